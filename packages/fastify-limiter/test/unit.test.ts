import { compilePolicy, type Decision } from '@sluice/limiter-core'
import { Registry } from 'prom-client'
import { parseList } from 'structured-headers'
import t from 'tap'

const param = (item: unknown, key: string) => (item as [unknown, Map<string, unknown>])[1].get(key)

import { agedDecision, BlockedCache } from '../src/blocked-cache.js'
import { CircuitBreaker } from '../src/breaker.js'
import { PluginOptionsError } from '../src/errors.js'
import {
  policyHeaders,
  rateLimitHeader,
  retryAfterSeconds,
  tightestIndex,
  writeHeaders,
} from '../src/headers.js'
import { SluiceMetrics } from '../src/metrics.js'
import { normalizeOptions, resolveOptions } from '../src/options.js'

const policy = compilePolicy([
  { name: 'per-second', algorithm: 'sliding-log', limit: 10, windowMs: 1000 },
  { name: 'per-day', algorithm: 'sliding-window', limit: 50000, windowMs: 86_400_000 },
])

function decision(allowed: boolean, retryAfterMs = 0): Decision {
  return {
    allowed,
    blockedBy: allowed ? null : 'per-second',
    retryAfterMs,
    nowMs: 1000,
    limits: [
      { name: 'per-second', limit: 10, remaining: allowed ? 3 : 0, resetMs: 900, retryAfterMs, allowed },
      {
        name: 'per-day',
        limit: 50000,
        remaining: 49990,
        resetMs: 86_000_000,
        retryAfterMs: 0,
        allowed: true,
      },
    ],
  }
}

t.test('circuit breaker opens after N failures, probes after cooldown, recovers', async (t) => {
  let now = 0
  const b = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 100 }, () => now)
  t.equal(b.allow(), true)
  b.failure()
  b.failure()
  t.equal(b.state, 'closed')
  b.success()
  b.failure()
  b.failure()
  t.equal(b.state, 'closed', 'success resets the consecutive count')
  b.failure()
  t.equal(b.state, 'open')
  t.equal(b.allow(), false, 'open: no calls')
  now = 99
  t.equal(b.allow(), false)
  now = 100
  t.equal(b.allow(), true, 'one probe after the cooldown')
  t.equal(b.state, 'half-open')
  t.equal(b.allow(), false, 'only one probe at a time')
  b.failure()
  t.equal(b.state, 'open', 'failed probe reopens')
  now = 150
  t.equal(b.allow(), false, 'a fresh cooldown')
  now = 200
  t.equal(b.allow(), true)
  b.success()
  t.equal(b.state, 'closed')
  t.equal(b.allow(), true)
  t.equal(b.allow(), true)
})

t.test(
  'blocked-key cache: applies until T, same etag/policy/cost, LRU bounded, dropped per app',
  async (t) => {
    const c = new BlockedCache(2)
    const entry = (appId: string, at: number, until: number, source: 'app' | 'default' = 'app') => ({
      appId,
      source,
      etag: '"e1"',
      policy,
      cost: 2,
      at,
      until,
      decision: decision(false, until - at),
    })
    c.set('a', entry('a', 0, 500))
    t.ok(c.get('a', '"e1"', policy, 2, 100))
    t.ok(c.get('a', '"e1"', policy, 5, 100), 'a larger cost is blocked too')
    t.notOk(c.get('a', '"e1"', policy, 1, 100), 'a smaller cost may pass: ask the store')
    t.notOk(c.get('a', '"e1"', compilePolicy(policy.limits), 2, 100), 'another policy object')
    t.notOk(c.get('a', '"e2"', policy, 2, 100), 'another config etag drops it')
    t.equal(c.size, 0)
    c.set('a', entry('a', 0, 500))
    t.notOk(c.get('a', '"e1"', policy, 2, 500), 'expired at T')
    c.set('a', entry('a', 0, 500))
    c.set('b', entry('b', 0, 500))
    c.set('c', entry('c', 0, 500, 'default'))
    t.equal(c.size, 2, 'bounded')
    t.notOk(c.get('a', '"e1"', policy, 2, 1), 'oldest evicted')
    c.dropApp('b')
    t.equal(c.size, 1)
    c.dropApp('default')
    t.equal(c.size, 0, 'a default update drops entries decided by the default config')
    const aged = agedDecision(entry('x', 0, 1500), 600)
    t.equal(aged.retryAfterMs, 900)
    t.equal(aged.limits[0]?.resetMs, 300)
    t.equal(aged.limits[1]?.retryAfterMs, 0)
    t.equal(new BlockedCache(0).size, 0)
  },
)

t.test('IETF headers are valid structured-field lists, computed once per policy', async (t) => {
  const h = policyHeaders(policy)
  t.equal(h.policy, '"per-second";q=10;w=1, "per-day";q=50000;w=86400')
  t.equal(policyHeaders(policy), h, 'cached per CompiledPolicy object')
  const parsed = parseList(h.policy)
  t.equal(parsed.length, 2)
  t.equal(parsed[0]?.[0], 'per-second')
  t.equal(param(parsed[0], 'q'), 10)
  t.equal(param(parsed[1], 'w'), 86400)
  const rl = rateLimitHeader(h, decision(true))
  t.equal(rl, '"per-second";r=3;t=1, "per-day";r=49990;t=86000')
  const items = parseList(rl)
  t.equal(param(items[0], 'r'), 3)
  const sub = compilePolicy([{ name: 'tiny', algorithm: 'fixed-window', limit: 1, windowMs: 10 }])
  t.equal(policyHeaders(sub).policy, '"tiny";q=1;w=1', 'sub-second windows announce w=1')
  const got: Record<string, string | number> = {}
  writeHeaders({ header: (n, v) => (got[n] = v) }, policy, decision(true), true)
  t.same(
    got,
    {
      'ratelimit-policy': h.policy,
      ratelimit: rl,
      'x-ratelimit-limit': '10',
      'x-ratelimit-remaining': 3,
      'x-ratelimit-reset': 1,
    },
    'legacy headers of the tightest limit (fewest units left: per-second here)',
  )
  t.equal(tightestIndex(decision(true), 1), 0, 'fewest remaining wins over the static tightest')
  t.equal(retryAfterSeconds(1), 1)
  t.equal(retryAfterSeconds(0), 1)
  t.equal(retryAfterSeconds(1001), 2)
})

t.test('options: validated once with messages naming the option', async (t) => {
  const o = normalizeOptions(undefined)
  t.equal(o.appIdHeader, 'x-app-id')
  t.equal(o.unknownAppPolicy, 'default')
  t.equal(o.timeoutMs, 100)
  t.equal(o.cost, 1)
  t.equal(normalizeOptions({ appIdHeader: 'X-Tenant' }).appIdHeader, 'x-tenant')
  const bad: [unknown, RegExp][] = [
    [{ nope: 1 }, /unknown option "nope"/],
    [{ timeoutMs: 0 }, /"timeoutMs" must be an integer >= 1/],
    [{ cost: 1.5 }, /"cost"/],
    [{ unknownAppPolicy: 'maybe' }, /"unknownAppPolicy"/],
    [{ appIdHeader: 'bad header' }, /"appIdHeader"/],
    [{ redis: {} }, /"redis"/],
    [{ store: 1 }, /"store"/],
    [{ breaker: { failureThreshold: 0 } }, /breaker.failureThreshold/],
    [{ breaker: { x: 1 } }, /breaker.x/],
    [{ config: { limits: [] } }, /option "config"/],
    [{ keyGenerator: 'x-app' }, /"keyGenerator" must be a function/],
    [
      {
        unknownAppPolicy: 'reject',
        config: { limits: [{ name: 'a', algorithm: 'fixed-window', limit: 1, windowMs: 1 }] },
      },
      /reject/,
    ],
  ]
  for (const [value, re] of bad) {
    t.throws(
      () => normalizeOptions(value as never),
      { code: 'SLUICE_ERR_PLUGIN_OPTIONS', message: re },
      String(re),
    )
    t.throws(() => normalizeOptions(value as never), PluginOptionsError)
  }
})

t.test('resolveOptions merges global and route options', async (t) => {
  const g = { cost: 2 }
  t.same(resolveOptions(g, undefined, 'r'), { enabled: true, cost: 2, policy: null })
  t.equal(resolveOptions(g, false, 'r').enabled, false)
  t.equal(resolveOptions(g, { cost: 5 }, 'r').cost, 5)
  const s = resolveOptions(
    g,
    { limits: [{ name: 'up', algorithm: 'token-bucket', limit: 3, windowMs: 1000 }] },
    'r',
  )
  t.equal(s.policy?.keySuffixes[0], 'up:tb:1000')
  t.equal(s.cost, 2)
  t.throws(() => resolveOptions(g, { cost: 0 }, 'route GET /x'), /route GET \/x: config.rateLimit.cost/)
  t.throws(
    () =>
      resolveOptions(
        g,
        { limits: [{ name: 'UP', algorithm: 'token-bucket', limit: 3, windowMs: 1000 }] },
        'route GET /x',
      ),
    /route GET \/x: config.rateLimit.*limits\[0\]\.name/,
  )
  t.throws(
    () => resolveOptions(g, { max: 1 } as never, 'route GET /x'),
    /unknown option "config.rateLimit.max"/,
  )
})

t.test('metrics: reused in a registry, app_id labels bounded', async (t) => {
  const registry = new Registry()
  const m = new SluiceMetrics(registry, 2)
  const m2 = new SluiceMetrics(registry, 2)
  t.equal(m2.decisions, m.decisions, 'same metric object reused, not double-registered')
  m.decision('a', 'allowed')
  m.decision('b', 'blocked')
  m.decision('c', 'allowed')
  m.decision('d', 'allowed')
  m.decision(null, 'allowed')
  const values = (await registry.getSingleMetric('sluice_decisions_total')!.get()).values
  const count = (app: string, decision: string) =>
    values.find((v) => v.labels['app_id'] === app && v.labels['decision'] === decision)?.value ?? 0
  t.equal(count('a', 'allowed'), 1)
  t.equal(count('b', 'blocked'), 1)
  t.equal(count('c', 'allowed'), 0)
  t.equal(count('_other', 'allowed'), 2)
  t.equal(count('_ip', 'allowed'), 1)
  const text = await registry.metrics()
  for (const name of [
    'sluice_decisions_total',
    'sluice_decision_duration_seconds',
    'sluice_store_errors_total',
    'sluice_config_cache_total',
    'sluice_config_reloads_total',
    'sluice_redis_up',
  ]) {
    t.match(text, `# TYPE ${name}`)
  }
})
