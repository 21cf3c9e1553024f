import { startRedis, uniquePrefix, waitReady } from '@sluice/test-redis'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { parseList } from 'structured-headers'
import t from 'tap'
import sluiceLimiter from '../src/index.js'
import { buildApp, cfg, countingStore, metricValue, putConfig } from './helpers.js'

const redis = await startRedis()
t.teardown(() => redis.stop())
const client = redis.client({ enableOfflineQueue: false, commandTimeout: 200, maxRetriesPerRequest: 1 })
await waitReady(client)

const params = (item: unknown) => (item as [unknown, Map<string, unknown>])[1]

t.test('allows up to the limit, then 429 with the contract body, headers and Retry-After', async (t) => {
  const appId = uniquePrefix('app')
  await putConfig(client, appId, {
    limits: [
      { name: 'per-second', algorithm: 'sliding-log', limit: 3, windowMs: 10_000 },
      { name: 'per-day', algorithm: 'sliding-window', limit: 50_000, windowMs: 86_400_000 },
    ],
    failMode: 'local',
    shadow: false,
  })
  const { app, events, registry } = await buildApp({ redis: client })
  t.teardown(() => app.close())
  const statuses: number[] = []
  let last: Awaited<ReturnType<typeof app.inject>> | undefined
  for (let i = 0; i < 3; i++) {
    last = await app.inject({ url: '/', headers: { 'x-app-id': appId } })
    statuses.push(last.statusCode)
  }
  t.same(statuses, [200, 200, 200])
  t.same(last!.json(), { ok: true, outcome: 'allowed' }, 'request.rateLimit holds the result')
  const policy = parseList(String(last!.headers['ratelimit-policy']))
  t.same(
    policy.map((i) => [i[0], params(i).get('q'), params(i).get('w')]),
    [
      ['per-second', 3, 10],
      ['per-day', 50_000, 86_400],
    ],
  )
  const rl = parseList(String(last!.headers['ratelimit']))
  t.equal(params(rl[0]).get('r'), 0)
  t.equal(params(rl[1]).get('r'), 49_997)
  t.ok((params(rl[0]).get('t') as number) >= 1)
  t.equal(last!.headers['x-ratelimit-limit'], '3', 'legacy headers of the tightest limit')
  t.equal(last!.headers['x-ratelimit-remaining'], '0')

  const blocked = await app.inject({ url: '/', headers: { 'x-app-id': appId } })
  t.equal(blocked.statusCode, 429)
  const body = blocked.json()
  t.same(Object.keys(body), ['statusCode', 'error', 'message', 'appId', 'limit', 'retryAfterMs'])
  t.equal(body.statusCode, 429)
  t.equal(body.error, 'Too Many Requests')
  t.equal(body.appId, appId)
  t.equal(body.limit, 'per-second')
  t.ok(body.retryAfterMs > 0 && body.retryAfterMs <= 10_000)
  t.equal(blocked.headers['retry-after'], String(Math.ceil(body.retryAfterMs / 1000)))
  t.ok(blocked.headers['ratelimit'])

  const b = events('ratelimit.blocked')
  t.equal(b.length, 1)
  t.equal(b[0]?.appId, appId)
  t.equal(b[0]?.['limit'], 'per-second')
  t.equal(b[0]?.['retryAfterMs'], body.retryAfterMs)
  t.ok(b[0]?.reqId, 'request logger carries reqId')
  t.equal(events('ratelimit.allowed').length, 3)
  t.equal(await metricValue(registry, 'sluice_decisions_total', { app_id: appId, decision: 'allowed' }), 3)
  t.equal(await metricValue(registry, 'sluice_decisions_total', { app_id: appId, decision: 'blocked' }), 1)
  t.equal(await metricValue(registry, 'sluice_redis_up'), 1)
  t.ok((await registry.metrics()).includes('sluice_decision_duration_seconds_count{store="redis"} 4'))
})

t.test('invalid appId -> 400 JSON; no appId -> ip subject with the default config', async (t) => {
  const { app } = await buildApp({ redis: client })
  t.teardown(() => app.close())
  const bad = await app.inject({ url: '/', headers: { 'x-app-id': 'bad id!' } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'SLUICE_ERR_INVALID_APP_ID')
  const long = await app.inject({ url: '/', headers: { 'x-app-id': 'a'.repeat(129) } })
  t.equal(long.statusCode, 400)
  const anon = await app.inject({ url: '/', remoteAddress: '10.9.8.7' })
  t.equal(anon.statusCode, 200)
  t.match(String(anon.headers['ratelimit-policy']), /^"default";q=600;w=60$/, 'built-in default config')
  t.ok((await client.keys('rl:{ip:10.9.8.7}:*')).length > 0, 'counted under ip:<address>')
})

t.test('unknownAppPolicy reject -> 403 for an appId without its own config', async (t) => {
  const known = uniquePrefix('known')
  await putConfig(client, known, cfg(5, 1000))
  const { app } = await buildApp({ redis: client, unknownAppPolicy: 'reject' })
  t.teardown(() => app.close())
  const r = await app.inject({ url: '/', headers: { 'x-app-id': uniquePrefix('nobody') } })
  t.equal(r.statusCode, 403)
  t.equal(r.json().code, 'SLUICE_ERR_UNKNOWN_APP')
  t.equal((await app.inject({ url: '/', headers: { 'x-app-id': known } })).statusCode, 200)
  t.equal(
    (await app.inject({ url: '/', remoteAddress: '10.0.0.77' })).statusCode,
    200,
    'anonymous still served',
  )
})

t.test('per route: exempt, own limits, cost', async (t) => {
  const appId = uniquePrefix('route')
  await putConfig(client, appId, cfg(4, 60_000))
  const { app } = await buildApp({ redis: client })
  t.teardown(() => app.close())
  const h = { 'x-app-id': appId }
  const free = await app.inject({ url: '/free', headers: h })
  t.equal(free.statusCode, 200)
  t.notOk(free.headers['ratelimit'], 'exempt route: no headers')
  const up = []
  for (let i = 0; i < 3; i++) up.push((await app.inject({ url: '/upload', headers: h })).statusCode)
  t.same(up, [200, 200, 429], 'route limits replace the config limits')
  const heavy = await app.inject({ url: '/heavy', headers: h })
  t.equal(heavy.statusCode, 200)
  t.equal(heavy.headers['x-ratelimit-remaining'], '1', 'cost 3 of 4')
  t.equal((await app.inject({ url: '/heavy', headers: h })).statusCode, 429)
  t.equal((await app.inject({ url: '/', headers: h })).statusCode, 200, 'cost 1 still fits')
  t.equal((await app.inject({ url: '/', headers: h })).statusCode, 429)
})

t.test('invalid route options fail at registration, naming the route', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sluiceLimiter, { registry: new Registry() })
  t.throws(
    () => app.get('/x', { config: { rateLimit: { cost: 0 } } }, async () => 'x'),
    /route GET \/x: config\.rateLimit\.cost/,
  )
})

t.test('double registration is refused; bad options name the option', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sluiceLimiter, { registry: new Registry() })
  await t.rejects(async () => {
    await app.register(sluiceLimiter, { registry: new Registry() })
  }, /already registered|SLUICE_ERR_PLUGIN_REGISTERED/)
  const app2 = Fastify()
  t.teardown(() => app2.close())
  await t.rejects(async () => {
    await app2.register(sluiceLimiter, { timeoutMs: -1 } as never)
  }, /"timeoutMs"/)
})

t.test('blocked-key cache answers 429 locally until T, dropped on config change', async (t) => {
  const appId = uniquePrefix('cache')
  await putConfig(client, appId, cfg(2, 60_000))
  const { RedisStore } = await import('@sluice/limiter-core')
  const store = countingStore(new RedisStore({ client, timeoutMs: 200 }))
  const { app } = await buildApp({ redis: client, store })
  t.teardown(() => app.close())
  const h = { 'x-app-id': appId }
  for (let i = 0; i < 2; i++) t.equal((await app.inject({ url: '/', headers: h })).statusCode, 200)
  t.equal((await app.inject({ url: '/', headers: h })).statusCode, 429)
  const calls = store.calls
  for (let i = 0; i < 5; i++) {
    const r = await app.inject({ url: '/', headers: h })
    t.equal(r.statusCode, 429)
    t.ok(Number(r.headers['retry-after']) >= 1)
  }
  t.equal(store.calls, calls, 'no store call while blocked')
  // A config change (new etag) drops the block.
  await putConfig(client, appId, cfg(10, 60_000))
  const deadline = Date.now() + 3000
  let status = 429
  while (status === 429 && Date.now() < deadline) {
    status = (await app.inject({ url: '/', headers: h })).statusCode
    if (status === 429) await new Promise((r) => setTimeout(r, 50))
  }
  t.equal(status, 200, 'new config applied, block dropped')
  t.ok(store.calls > calls)
})

t.test('shadow mode counts and logs but never blocks', async (t) => {
  const appId = uniquePrefix('shadow')
  await putConfig(client, appId, cfg(1, 60_000, { shadow: true }))
  const { app, events, registry } = await buildApp({ redis: client })
  t.teardown(() => app.close())
  const h = { 'x-app-id': appId }
  const s = []
  for (let i = 0; i < 3; i++) s.push((await app.inject({ url: '/', headers: h })).statusCode)
  t.same(s, [200, 200, 200])
  t.equal(events('ratelimit.shadow_blocked').length, 2)
  t.equal(events('ratelimit.shadow_blocked')[0]?.appId, appId)
  t.equal(
    await metricValue(registry, 'sluice_decisions_total', { app_id: appId, decision: 'shadow_blocked' }),
    2,
  )
})

t.test('onBlocked hook replies; headers can be disabled', async (t) => {
  const appId = uniquePrefix('hook')
  await putConfig(client, appId, cfg(1, 60_000))
  const { app } = await buildApp({
    redis: client,
    headers: false,
    onBlocked: (_req, reply, info) => {
      reply.code(429).send({ custom: true, limit: info.decision?.blockedBy })
    },
  })
  t.teardown(() => app.close())
  const h = { 'x-app-id': appId }
  const ok = await app.inject({ url: '/', headers: h })
  t.notOk(ok.headers['ratelimit'])
  t.notOk(ok.headers['x-ratelimit-limit'])
  const r = await app.inject({ url: '/', headers: h })
  t.equal(r.statusCode, 429)
  t.same(r.json(), { custom: true, limit: 'main' })
  t.ok(r.headers['retry-after'], 'Retry-After is always sent on a block')
})

t.test('fastify.sluice.check decides like a request', async (t) => {
  const appId = uniquePrefix('check')
  await putConfig(client, appId, cfg(5, 60_000))
  const { app, registry } = await buildApp({ redis: client })
  t.teardown(() => app.close())
  const a = await app.sluice.check(appId, 3)
  t.equal(a.outcome, 'allowed')
  t.equal(a.decision?.limits[0]?.remaining, 2)
  t.equal(a.resolved.source, 'app')
  const b = await app.sluice.check(appId, 3)
  t.equal(b.outcome, 'blocked')
  t.equal(b.allowed, false)
  t.equal(app.sluice.blockedBody(b).limit, 'main')
  await t.rejects(app.sluice.check('bad id'), { code: 'SLUICE_ERR_INVALID_APP_ID', statusCode: 400 })
  await t.rejects(app.sluice.check(appId, 0), { code: 'SLUICE_ERR_INVALID_COST', statusCode: 400 })
  t.equal(await metricValue(registry, 'sluice_decisions_total', { app_id: appId }), 2)
})

t.test('config updates are logged; invalid configs are logged and ignored', async (t) => {
  const appId = uniquePrefix('upd')
  await putConfig(client, appId, cfg(5, 60_000))
  const { app, events, registry } = await buildApp({ redis: client })
  t.teardown(() => app.close())
  const h = { 'x-app-id': appId }
  t.equal((await app.inject({ url: '/', headers: h })).headers['x-ratelimit-limit'], '5')
  await client.set(`rateLimitConfig:${appId}`, '{"limits": "nope"}')
  await client.publish('rateLimitConfig:updates', appId)
  const deadline = Date.now() + 3000
  while (events('ratelimit.config_invalid').length === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25))
    await app.inject({ url: '/', headers: h })
  }
  t.equal(events('ratelimit.config_invalid')[0]?.appId, appId)
  t.equal(
    (await app.inject({ url: '/', headers: h })).headers['x-ratelimit-limit'],
    '5',
    'last good config kept',
  )
  await putConfig(client, appId, cfg(7, 60_000))
  let limit = '5'
  while (limit !== '7' && Date.now() < deadline + 3000) {
    await new Promise((r) => setTimeout(r, 25))
    limit = String((await app.inject({ url: '/', headers: h })).headers['x-ratelimit-limit'])
  }
  t.equal(limit, '7')
  t.ok(events('ratelimit.config_updated').some((l) => l.appId === appId))
  t.ok((await metricValue(registry, 'sluice_config_cache_total')) > 0)
  t.ok((await metricValue(registry, 'sluice_config_reloads_total', { source: 'pubsub' })) > 0)
})

t.test('two instances sharing one Redis enforce one budget exactly', async (t) => {
  const appId = uniquePrefix('shared')
  const limit = 137
  // failMode closed: a store failure would show as 503, never as a silent local admission.
  await putConfig(client, appId, cfg(limit, 60_000, { failMode: 'closed' }))
  const slow = { enableOfflineQueue: false, commandTimeout: 5000 }
  const a = await buildApp({ redis: redis.client(slow), timeoutMs: 5000 }, 'warn')
  const b = await buildApp({ redis: redis.client(slow), timeoutMs: 5000 }, 'warn')
  t.teardown(() => Promise.all([a.app.close(), b.app.close()]))
  const h = { 'x-app-id': appId }
  // Warm both config caches.
  await a.app.sluice.resolver.resolve(appId)
  await b.app.sluice.resolver.resolve(appId)
  const results = await Promise.all(
    Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? a : b).app.inject({ url: '/', headers: h })),
  )
  const admitted = results.filter((r) => r.statusCode === 200).length
  const blocked = results.filter((r) => r.statusCode === 429).length
  t.equal(admitted, limit, 'exactly limit admitted')
  t.equal(blocked, 1000 - limit)
})
