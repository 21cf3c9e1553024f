import { startRedis, uniquePrefix, waitReady } from '@sluice/test-redis'
import t from 'tap'
import { buildApp, cfg, metricValue, putConfig } from './helpers.js'

// Own server: this file pauses and kills it.
const redis = await startRedis({ own: true })
t.teardown(() => redis.stop())
const clientOpts = {
  enableOfflineQueue: false,
  commandTimeout: 100,
  maxRetriesPerRequest: 0,
  retryStrategy: () => 50,
}
const client = redis.client(clientOpts)
await waitReady(client)

const TIMEOUT = 100
/** Generous "no hang" bound for one response during an outage (timeout + slack on a busy machine). */
const BOUND = 2000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now()
  const v = await p
  return [v, performance.now() - t0]
}

t.test(
  'Redis paused, then killed: every fail mode holds, responses bounded, recovery automatic',
  async (t) => {
    const open = uniquePrefix('open')
    const closed = uniquePrefix('closed')
    const local = uniquePrefix('local')
    await putConfig(client, open, cfg(100, 60_000, { failMode: 'open' }))
    await putConfig(client, closed, cfg(100, 60_000, { failMode: 'closed' }))
    await putConfig(client, local, cfg(2, 60_000, { failMode: 'local' }))
    const pluginClient = redis.client(clientOpts)
    await waitReady(pluginClient)
    // Manual local clock: the breaker cooldown and the log rate limit move only when the test says so.
    let now = 1_000_000
    const { app, events, registry } = await buildApp(
      {
        redis: pluginClient,
        timeoutMs: TIMEOUT,
        cacheTtlMs: 60_000,
        breaker: { failureThreshold: 3, cooldownMs: 300 },
        clock: () => now,
      },
      'info',
    )
    t.teardown(() => app.close())
    const get = (appId: string) => timed(app.inject({ url: '/', headers: { 'x-app-id': appId } }))

    // Warm the config cache while Redis is up.
    for (const id of [open, closed]) t.equal((await get(id))[0].statusCode, 200)
    await app.sluice.resolver.resolve(local)
    t.equal(await metricValue(registry, 'sluice_redis_up'), 1)

    await redis.pause()
    try {
      const [o, to] = await get(open)
      t.equal(o.statusCode, 200, 'open: admitted')
      t.same(o.json().outcome, 'fail_open')
      t.ok(to < BOUND, `open answered in ${Math.round(to)} ms`)
      const [c, tc] = await get(closed)
      t.equal(c.statusCode, 503, 'closed: 503')
      t.equal(c.headers['retry-after'], '1')
      t.equal(c.json().code, 'SLUICE_ERR_STORE_UNAVAILABLE')
      t.ok(tc < BOUND, `closed answered in ${Math.round(tc)} ms`)
      const l = []
      for (let i = 0; i < 3; i++) {
        const [r, tl] = await get(local)
        t.ok(tl < BOUND)
        l.push(r.statusCode)
      }
      t.same(l, [200, 200, 429], 'local: same limits on the in-process store (a real decision)')
      // Breaker is open now: requests skip the store (no new store error).
      t.equal(app.sluice.breaker?.state, 'open', 'breaker opened')
      const errorsBefore = await metricValue(registry, 'sluice_store_errors_total')
      for (let i = 0; i < 10; i++) {
        const [r, tf] = await get(open)
        t.equal(r.statusCode, 200)
        t.ok(tf < BOUND)
      }
      t.equal(
        await metricValue(registry, 'sluice_store_errors_total'),
        errorsBefore,
        'no store call while open',
      )
    } finally {
      await redis.resume()
    }
    t.equal(
      await metricValue(registry, 'sluice_decisions_total', { app_id: open, decision: 'fail_open' }),
      11,
    )
    t.equal(
      await metricValue(registry, 'sluice_decisions_total', { app_id: closed, decision: 'fail_closed' }),
      1,
    )
    t.equal(
      await metricValue(registry, 'sluice_decisions_total', { app_id: local, decision: 'fail_local' }),
      3,
    )
    t.ok((await metricValue(registry, 'sluice_store_errors_total', { kind: 'timeout' })) >= 3)
    t.equal(await metricValue(registry, 'sluice_redis_up'), 0)
    const errs = events('ratelimit.store_error')
    t.ok(errs.length >= 1, 'store errors logged')
    t.ok(errs.length <= 3, `store error lines rate-limited: one per kind per second (${errs.length})`)
    t.ok(errs.every((e) => e.level === 50 && 'appId' in e && e.reqId !== undefined))
    t.notOk(
      events('ratelimit.blocked').some((e) => e.appId === open || e.appId === closed),
      'a store failure is never a 429',
    )

    // Recovery: after the cooldown a probe succeeds and Redis decides again.
    now += 1000
    let outcome = ''
    const deadline = Date.now() + 5000
    while (outcome !== 'allowed' && Date.now() < deadline) {
      await sleep(100)
      now += 1000
      outcome = (await get(open))[0].json().outcome
    }
    t.equal(outcome, 'allowed', 'recovered after resume')
    t.equal(app.sluice.breaker?.state, 'closed')
    t.equal(await metricValue(registry, 'sluice_redis_up'), 1)

    // Kill: connection errors, same fail modes.
    await redis.kill()
    try {
      const [o, to] = await get(open)
      t.equal(o.statusCode, 200)
      t.equal(o.json().outcome, 'fail_open')
      t.ok(to < BOUND)
      const [c, tc] = await get(closed)
      t.equal(c.statusCode, 503)
      t.ok(tc < BOUND)
      t.ok((await metricValue(registry, 'sluice_store_errors_total', { kind: 'connection' })) >= 1)
    } finally {
      await redis.restart()
    }
    // Restarted empty: the resolver keeps serving the cached config; decisions go back to Redis.
    outcome = ''
    const deadline2 = Date.now() + 8000
    while (outcome !== 'allowed' && Date.now() < deadline2) {
      await sleep(100)
      now += 1000
      outcome = (await get(open))[0].json().outcome
    }
    t.equal(outcome, 'allowed', 'recovered after restart')
    t.equal(await metricValue(registry, 'sluice_redis_up'), 1)
  },
)

t.test('store error lines: at most one per second per kind, with a suppressed count', async (t) => {
  const { StoreErrorLog } = await import('../src/store-log.js')
  let now = 0
  const lines: Record<string, unknown>[] = []
  const log = { error: (o: Record<string, unknown>) => lines.push(o) } as never
  const s = new StoreErrorLog(() => now)
  s.report(log, 'timeout', 'a', 'x')
  s.report(log, 'timeout', 'a', 'x')
  s.report(log, 'timeout', 'a', 'x')
  s.report(log, 'connection', 'a', 'x')
  t.equal(lines.length, 2)
  now = 1000
  s.report(log, 'timeout', 'b', 'x')
  t.equal(lines.length, 3)
  t.same(lines[2], { event: 'ratelimit.store_error', appId: 'b', kind: 'timeout', suppressed: 2 })
})
