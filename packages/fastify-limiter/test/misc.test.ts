import { readFileSync } from 'node:fs'
import { MemoryStore } from '@sluice/limiter-core'
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import Fastify from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import { Registry } from 'prom-client'
import t from 'tap'
import sluiceLimiter from '../src/index.js'
import { buildApp, cfg, countingStore, metricValue } from './helpers.js'
import { buildServer } from './readme-example.js'

const redis = await startRedis()
t.teardown(() => redis.stop())

t.test('README example is the tested code, and works', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const example = readFileSync(new URL('./readme-example.ts', import.meta.url), 'utf8')
  t.ok(readme.includes(example.trim()), 'README contains test/readme-example.ts verbatim')
  const app = await buildServer(redis.url)
  t.teardown(() => app.close())
  await app.ready()
  const h = { 'x-app-id': uniquePrefix('readme') }
  const first = await app.inject({ url: '/hello', headers: h })
  t.equal(first.statusCode, 200)
  t.equal(first.json().remaining, 9)
  t.equal((await app.inject({ url: '/healthz', headers: h })).headers['ratelimit'], undefined)
  t.equal((await app.inject({ method: 'POST', url: '/reports', headers: h })).statusCode, 200)
  const blocked = await app.inject({ method: 'POST', url: '/reports', headers: h })
  t.equal(blocked.statusCode, 429, 'cost 5 + 1 + 5 > 10')
})

t.test('no redis and no store: the embedded memory store, one warning', async (t) => {
  const { app, logs, registry } = await buildApp({ config: cfg(2, 60_000) }, 'info')
  t.teardown(() => app.close())
  const warn = logs.filter((l) => l.level === 40)
  t.equal(warn.length, 1)
  t.match(String(warn[0]?.msg), /per-process/)
  t.equal(app.sluice.store.kind, 'memory')
  const h = { 'x-app-id': 'mem-app' }
  const s = []
  for (let i = 0; i < 3; i++) s.push((await app.inject({ url: '/', headers: h })).statusCode)
  t.same(s, [200, 200, 429])
  t.ok((await registry.metrics()).includes('sluice_decision_duration_seconds_count{store="memory"} 3'))
  t.equal(await metricValue(registry, 'sluice_redis_up'), 0)
})

t.test('a given store and resolver are used and never closed', async (t) => {
  const store = new MemoryStore()
  let closed = false
  const inner = store.close.bind(store)
  store.close = async () => {
    closed = true
    await inner()
  }
  const app = Fastify()
  await app.register(sluiceLimiter, { store, config: cfg(1, 60_000), registry: new Registry() })
  await app.ready()
  t.equal(app.sluice.store, store)
  await app.close()
  t.equal(closed, false)
  await inner()
})

t.test("metrics go to fastify-metrics' registry when fastify.metrics exists", async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyMetrics.default ?? fastifyMetrics, {
    endpoint: '/metrics',
    defaultMetrics: { enabled: false },
  })
  await app.register(sluiceLimiter, { config: cfg(5, 60_000) })
  app.get('/', async () => 'ok')
  await app.ready()
  await app.inject({ url: '/', headers: { 'x-app-id': 'fm-app' } })
  const text = (await app.inject({ url: '/metrics' })).body
  t.match(text, /sluice_decisions_total\{app_id="fm-app",decision="allowed"\} 1/)
  t.match(text, /http_request_duration_seconds/, 'fastify-metrics HTTP metrics alongside')
})

t.test('two plugin instances on one registry reuse the metrics (no double registration)', async (t) => {
  const registry = new Registry()
  const a = await buildApp({ config: cfg(5, 60_000), registry }, 'warn')
  const b = await buildApp({ config: cfg(5, 60_000), registry }, 'warn')
  t.teardown(() => Promise.all([a.app.close(), b.app.close()]))
  await a.app.inject({ url: '/', headers: { 'x-app-id': 'reg-app' } })
  await b.app.inject({ url: '/', headers: { 'x-app-id': 'reg-app' } })
  t.equal(
    await metricValue(registry, 'sluice_decisions_total', { app_id: 'reg-app', decision: 'allowed' }),
    2,
  )
})

t.test('keyGenerator and a custom appIdHeader', async (t) => {
  const { app } = await buildApp({
    config: cfg(1, 60_000),
    keyGenerator: (r) => (r.query as { key?: string }).key,
  })
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/?key=kg-1' })).statusCode, 200)
  t.equal((await app.inject({ url: '/?key=kg-1' })).statusCode, 429)
  t.equal((await app.inject({ url: '/?key=kg-2' })).statusCode, 200)
  t.equal((await app.inject({ url: '/?key=bad%20key' })).statusCode, 400)
  const other = await buildApp({ config: cfg(1, 60_000), appIdHeader: 'X-Tenant' })
  t.teardown(() => other.app.close())
  t.equal((await other.app.inject({ url: '/', headers: { 'x-tenant': 'tn' } })).statusCode, 200)
  t.equal((await other.app.inject({ url: '/', headers: { 'x-tenant': 'tn' } })).statusCode, 429)
})

t.test('a given store that hangs or throws: guarded by timeoutMs, never a 429', async (t) => {
  const hanging = {
    kind: 'redis' as const,
    decide: () => new Promise<never>(() => {}),
    close: async () => {},
  }
  const { app, registry } = await buildApp(
    { store: hanging, config: cfg(1, 60_000, { failMode: 'open' }), timeoutMs: 50, breaker: false },
    'warn',
  )
  t.teardown(() => app.close())
  const t0 = performance.now()
  const r = await app.inject({ url: '/', headers: { 'x-app-id': 'hang' } })
  t.ok(performance.now() - t0 < 2000, 'answered despite a store that never answers')
  t.equal(r.statusCode, 200)
  t.equal(r.json().outcome, 'fail_open')
  t.equal(await metricValue(registry, 'sluice_store_errors_total', { kind: 'timeout' }), 1)

  const throwing = {
    kind: 'redis' as const,
    decide: () => Promise.reject(new Error('boom')),
    close: async () => {},
  }
  const b = await buildApp({ store: throwing, config: cfg(1, 60_000, { failMode: 'closed' }) }, 'warn')
  t.teardown(() => b.app.close())
  const c = await b.app.inject({ url: '/', headers: { 'x-app-id': 'boom' } })
  t.equal(c.statusCode, 503)
  t.equal(await metricValue(b.registry, 'sluice_store_errors_total', { kind: 'other' }), 1)
})

t.test('one store call per decision, whatever the number of limits', async (t) => {
  const store = countingStore(new MemoryStore())
  const config = {
    limits: [
      { name: 'a', algorithm: 'sliding-log', limit: 5, windowMs: 1000 },
      { name: 'b', algorithm: 'sliding-window', limit: 50, windowMs: 60_000 },
      { name: 'c', algorithm: 'token-bucket', limit: 500, windowMs: 3_600_000 },
      { name: 'd', algorithm: 'fixed-window', limit: 5000, windowMs: 86_400_000 },
    ],
    failMode: 'local',
    shadow: false,
  } as const
  const { app } = await buildApp({ store, config, blockedCacheSize: 0 }, 'warn')
  t.teardown(() => app.close())
  for (let i = 0; i < 7; i++) await app.inject({ url: '/', headers: { 'x-app-id': 'multi' } })
  t.equal(store.calls, 7)
})

t.test(
  'a route added before the plugin with bad options is limited with the global settings, and logged',
  async (t) => {
    const logs: { event?: string }[] = []
    const app = Fastify({
      logger: { level: 'error', stream: { write: (l: string) => void logs.push(JSON.parse(l)) } },
    })
    t.teardown(() => app.close())
    await app.register(async (scope) => {
      scope.get('/early', { config: { rateLimit: { cost: 0 } } }, async () => 'early')
      await scope.register(sluiceLimiter, { config: cfg(1, 60_000), registry: new Registry() })
    })
    await app.ready()
    const h = { 'x-app-id': 'early-app' }
    t.equal((await app.inject({ url: '/early', headers: h })).statusCode, 200)
    t.equal((await app.inject({ url: '/early', headers: h })).statusCode, 429, 'not silently exempt')
    t.equal(logs.filter((l) => l.event === 'ratelimit.route_options_invalid').length, 1)
  },
)
