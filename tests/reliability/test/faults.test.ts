// Redis faults against one gateway (in process, REDIS_URL through the fault proxy): killed,
// restarted empty, paused (SIGSTOP), slow (latency over the timeout), connection reset
// mid-command, black hole. For each: every response within the store timeout plus slack, the
// declared fail mode holds per app, metrics and logs count it, and the gateway recovers by itself.
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { type ConfigJson, eventually, putConfig, sleep } from '../src/configs.js'
import { startFaultProxy } from '../src/fault-proxy.js'
import { startInProcess, type TimedResponse } from '../src/in-process.js'
import { sum, value } from '../src/metrics.js'

const TIMEOUT_MS = 100
/** "No hang" bound for any one response during a fault: the store timeout plus generous slack. */
const BOUND_MS = TIMEOUT_MS + 1_900
const PER_APP = 40
const LOCAL_LIMIT = 5
const CACHE_TTL_MS = 1000

const redis = await startRedis({ own: true })
const proxy = await startFaultProxy(redis.port)
const direct = redis.client({ maxRetriesPerRequest: 1 })
const p = uniquePrefix('fault')
// The local app gets a fresh id per fault, so its Redis counter (and the blocked-key cache) of a
// previous fault never decides for it.
const apps = { open: `${p}-open`, closed: `${p}-closed`, local: `${p}-local-0`, probe: `${p}-probe` }
const localConfig: ConfigJson = {
  limits: [{ name: 'small', algorithm: 'sliding-log', limit: LOCAL_LIMIT, windowMs: 60_000 }],
  failMode: 'local',
}
const big = { name: 'big', algorithm: 'fixed-window', limit: 1_000_000, windowMs: 60_000 } as const
const configs: Record<string, ConfigJson> = {
  [apps.open]: { limits: [big], failMode: 'open' },
  [apps.closed]: { limits: [big], failMode: 'closed' },
  [apps.local]: localConfig,
  [apps.probe]: { limits: [big], failMode: 'open' },
}
async function putAll(): Promise<void> {
  for (const [id, c] of Object.entries(configs)) await putConfig(direct, id, c)
}
await putAll()

const g = await startInProcess({
  REDIS_URL: proxy.url,
  REDIS_TIMEOUT_MS: String(TIMEOUT_MS),
  CONFIG_CACHE_TTL_MS: String(CACHE_TTL_MS),
})
t.teardown(async () => {
  await g.close()
  await proxy.close()
  await redis.stop()
})

/** Wait until the probe app is decided by Redis again (outcome `allowed`, a counter key in Redis). */
async function recovered(timeoutMs = 20_000): Promise<number> {
  return eventually(
    'decided by Redis again',
    async () => {
      const r = await g.request(apps.probe)
      return r.status === 200 && r.json().outcome === 'allowed'
    },
    timeoutMs,
    50,
  )
}

/** Configs seen by the gateway: every app decided by Redis with its own config. */
async function configsLoaded(): Promise<void> {
  await eventually(
    'configs loaded',
    async () => {
      for (const id of Object.values(apps)) {
        const r = await g.request(id, '/warm')
        // 429: the app's own small limit applies (the default's is larger)
        if (r.status !== 429 && r.json().configSource !== 'app') return false
      }
      return true
    },
    20_000,
    100,
  )
}

async function burst(appId: string): Promise<TimedResponse[]> {
  const out: TimedResponse[] = []
  // 4 waves of 10 concurrent requests
  for (let w = 0; w < PER_APP / 10; w++) {
    out.push(...(await Promise.all(Array.from({ length: 10 }, () => g.request(appId)))))
  }
  return out
}

export interface FaultFigure {
  fault: string
  worstMs: number
  recoverMs: number
  storeErrors: number
  logLines: number
}
const figures: FaultFigure[] = []

interface Fault {
  name: string
  inject(): Promise<void>
  heal(): Promise<void>
  /** The fault makes the connection drop: sluice_redis_up must read 0 during it. */
  down: boolean
}

const faults: Fault[] = [
  {
    name: 'killed',
    inject: () => redis.kill(),
    heal: async () => {
      await redis.restart()
      await putAll()
    },
    down: true,
  },
  { name: 'paused (SIGSTOP)', inject: () => redis.pause(), heal: () => redis.resume(), down: false },
  {
    name: 'slow (latency 400 ms > timeout)',
    inject: async () => proxy.setLatency(400),
    heal: async () => proxy.heal(),
    down: false,
  },
  {
    name: 'connection reset mid-command',
    inject: async () => {
      proxy.resetOnNextCommand(1_000_000)
      proxy.resetAll()
    },
    heal: async () => proxy.heal(),
    down: false,
  },
  { name: 'black hole', inject: async () => proxy.blackhole(), heal: async () => proxy.heal(), down: false },
  {
    name: 'restarted empty',
    inject: async () => {
      await redis.restart()
    },
    heal: async () => {
      await putAll()
    },
    down: false,
  },
]

for (const [i, fault] of faults.entries()) {
  t.test(`Redis ${fault.name}`, async (t) => {
    apps.local = `${p}-local-${i}`
    configs[apps.local] = localConfig
    await putAll()
    await configsLoaded()
    await recovered()
    const before = await g.metrics()
    const logsBefore = g.events.get('ratelimit.store_error') ?? 0
    let healed = false
    t.teardown(async () => {
      if (!healed) await fault.heal()
    })
    await fault.inject()
    const t0 = Date.now()
    const [open, closed, local] = await Promise.all([burst(apps.open), burst(apps.closed), burst(apps.local)])
    const all = [...open, ...closed, ...local]
    const worst = Math.max(...all.map((r) => r.ms))
    t.ok(worst < BOUND_MS, `worst response ${worst.toFixed(0)} ms < ${BOUND_MS} ms`)
    t.notOk(
      all.some((r) => r.status >= 500 && r.status !== 503),
      'no 5xx other than the fail-closed 503',
    )

    const health = await g.gw.app.inject({ method: 'GET', url: '/healthz' })
    t.equal(health.statusCode, 200, '/healthz stays 200 (liveness does not depend on Redis)')

    if (fault.name !== 'restarted empty') {
      const ready = await g.gw.app.inject({ method: 'GET', url: '/readyz' })
      t.equal(ready.statusCode, 503, `/readyz 503 during the fault: ${ready.body.slice(0, 120)}`)
      // past the config cache TTL the last good config keeps serving: the fail modes still hold
      await sleep(Math.max(0, CACHE_TTL_MS + 300 - (Date.now() - t0)))
      const [open2, closed2] = await Promise.all([
        Promise.all(Array.from({ length: 10 }, () => g.request(apps.open))),
        Promise.all(Array.from({ length: 10 }, () => g.request(apps.closed))),
      ])
      t.ok(
        open2.every((r) => r.status === 200 && r.json().outcome === 'fail_open'),
        `after the cache TTL: open app still fail_open (${[...new Set(open2.map((r) => r.status))]})`,
      )
      t.ok(
        closed2.every((r) => r.status === 503 && r.headers['retry-after'] === '1'),
        `after the cache TTL: closed app still 503 (${[...new Set(closed2.map((r) => r.status))]})`,
      )
      t.ok(Math.max(...open2.map((r) => r.ms), ...closed2.map((r) => r.ms)) < BOUND_MS, 'still within bound')
    }

    if (fault.name === 'restarted empty') {
      // Redis answers again at once (empty): decisions continue on Redis, not in a fail mode.
      t.ok(
        open.every((r) => r.status === 200),
        'open app admitted',
      )
      await eventually(
        'default config restored',
        async () => (await direct.exists('rateLimitConfig:default')) === 1,
        20_000,
      )
      t.pass('rateLimitConfig:default restored by the gateway after the restart')
    } else {
      t.ok(
        open.every((r) => r.status === 200),
        `failMode open: all ${open.length} admitted (${[...new Set(open.map((r) => r.status))]})`,
      )
      t.ok(
        open.every((r) => r.json().outcome === 'fail_open'),
        'open: outcome fail_open',
      )
      t.ok(
        closed.every((r) => r.status === 503 && r.headers['retry-after'] === '1'),
        `failMode closed: all 503 with Retry-After: 1 (${[...new Set(closed.map((r) => `${r.status}/${r.headers['retry-after']}`))]})`,
      )
      const admitted = local.filter((r) => r.status === 200).length
      t.ok(
        local.every((r) => r.status === 200 || r.status === 429),
        'failMode local: only 200 or 429',
      )
      t.ok(admitted <= LOCAL_LIMIT, `failMode local: ${admitted} admitted <= limit ${LOCAL_LIMIT}`)
      const blocked = local.filter((r) => r.status === 429)
      t.ok(
        blocked.every((r) => Number(r.headers['retry-after']) >= 1),
        'local 429s carry Retry-After >= 1',
      )

      const during = await g.metrics()
      const d = (labels: Record<string, string>) =>
        sum(during, 'sluice_decisions_total', labels) - sum(before, 'sluice_decisions_total', labels)
      t.equal(d({ app_id: apps.open, decision: 'fail_open' }), PER_APP + 10, 'fail_open counted per request')
      t.equal(
        d({ app_id: apps.closed, decision: 'fail_closed' }),
        PER_APP + 10,
        'fail_closed counted per request',
      )
      t.equal(d({ app_id: apps.local, decision: 'fail_local' }), PER_APP, 'fail_local counted per request')
      const errs = sum(during, 'sluice_store_errors_total') - sum(before, 'sluice_store_errors_total')
      t.ok(errs >= 1, `sluice_store_errors_total +${errs}`)
      const logged = (g.events.get('ratelimit.store_error') ?? 0) - logsBefore
      t.ok(logged >= 1, `ratelimit.store_error logged (${logged} lines)`)
      t.ok(
        logged < all.length,
        `store_error logs are rate-limited (${logged} lines for ${all.length} failures)`,
      )
      if (fault.down) {
        await eventually(
          'sluice_redis_up 0',
          async () => value(await g.metrics(), 'sluice_redis_up') === 0,
          10_000,
        )
        t.pass('sluice_redis_up reads 0 during the outage')
      }
      figures.push({
        fault: fault.name,
        worstMs: Math.round(worst),
        recoverMs: 0,
        storeErrors: errs,
        logLines: logged,
      })
    }
    // stay in the fault a little longer than the breaker cooldown and the cache TTL, then heal
    await sleep(Math.max(0, CACHE_TTL_MS + 400 - (Date.now() - t0)))
    const healedAt = Date.now()
    await fault.heal()
    healed = true
    const ms = await recovered()
    const recoverMs = Date.now() - healedAt
    t.ok(ms >= 0, `recovered without a restart in ${recoverMs} ms`)
    t.equal(value(await g.metrics(), 'sluice_redis_up'), 1, 'sluice_redis_up back to 1')
    const fig = figures.find((f) => f.fault === fault.name)
    if (fig) fig.recoverMs = recoverMs
    else
      figures.push({ fault: fault.name, worstMs: Math.round(worst), recoverMs, storeErrors: 0, logLines: 0 })
    const keys = await direct.keys(`rl:{${apps.probe}}*`)
    t.ok(keys.length > 0, 'the probe counter is in Redis again')
  })
}

t.test('figures', async (t) => {
  t.equal(figures.length, faults.length)
  if (process.env.SLUICE_RELIABILITY_REPORT) {
    const { writeFileSync } = await import('node:fs')
    writeFileSync(process.env.SLUICE_RELIABILITY_REPORT, JSON.stringify(figures, null, 2))
  }
  t.comment(JSON.stringify(figures))
})
