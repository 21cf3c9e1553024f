// Memory during an outage: many requests (CI 20k, SLUICE_RELIABILITY_FULL=1: 100k) over many
// appIds while Redis is black-holed; the heap (after a forced GC) must not grow with the count.
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { type ConfigJson, putConfig } from '../src/configs.js'
import { startFaultProxy } from '../src/fault-proxy.js'
import { startInProcess } from '../src/in-process.js'
import { sum } from '../src/metrics.js'

const FULL = process.env.SLUICE_RELIABILITY_FULL === '1'
const TOTAL = FULL ? 100_000 : 20_000
const APPS = 200
const CONCURRENCY = 50
/** Allowed heap growth between the first sample after warm-up and the last (generous). */
const GROWTH_BOUND_MB = 24

const gc = (globalThis as { gc?: () => void }).gc
const redis = await startRedis({ own: true })
const proxy = await startFaultProxy(redis.port)
const direct = redis.client()
const p = uniquePrefix('mem')
const modes = ['open', 'closed', 'local'] as const
for (let i = 0; i < 3; i++) {
  const config: ConfigJson = {
    limits: [{ name: 'small', algorithm: 'sliding-log', limit: 20, windowMs: 60_000 }],
    failMode: modes[i]!,
  }
  await putConfig(direct, `${p}-${modes[i]}`, config)
}
const g = await startInProcess(
  { REDIS_URL: proxy.url, REDIS_TIMEOUT_MS: '100', CONFIG_CACHE_TTL_MS: '1000' },
  100,
)
t.teardown(async () => {
  await g.close()
  await proxy.close()
  await redis.stop()
})

t.test(`heap stays flat over ${TOTAL} requests during an outage`, async (t) => {
  t.ok(gc, 'tests run with --expose-gc')
  // warm the config cache, then cut Redis off
  for (const m of modes) await g.request(`${p}-${m}`)
  proxy.blackhole()
  const samples: { n: number; heapMb: number }[] = []
  const statuses = new Map<number, number>()
  let worst = 0
  const appOf = (i: number) => (i % 4 === 3 ? `${p}-r${i % APPS}` : `${p}-${modes[i % 3]}`)
  const sampleEvery = TOTAL / 20
  for (let n = 0; n < TOTAL; n += CONCURRENCY) {
    const rs = await Promise.all(Array.from({ length: CONCURRENCY }, (_, k) => g.request(appOf(n + k))))
    for (const r of rs) {
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
      if (r.ms > worst) worst = r.ms
    }
    if ((n + CONCURRENCY) % sampleEvery === 0) {
      gc?.()
      samples.push({ n: n + CONCURRENCY, heapMb: process.memoryUsage().heapUsed / 2 ** 20 })
    }
  }
  proxy.heal()
  const base = samples[Math.floor(samples.length / 5)]!.heapMb
  const tail = Math.max(...samples.slice(-5).map((s) => s.heapMb))
  t.comment(`heap samples (MB): ${samples.map((s) => s.heapMb.toFixed(1)).join(' ')}`)
  t.comment(`statuses: ${JSON.stringify([...statuses])}; worst ${worst.toFixed(0)} ms`)
  t.ok(tail - base < GROWTH_BOUND_MB, `heap growth ${(tail - base).toFixed(1)} MB < ${GROWTH_BOUND_MB} MB`)
  t.notOk(
    [...statuses.keys()].some((s) => s >= 500 && s !== 503),
    'no 5xx but the fail-closed 503',
  )
  t.ok(worst < 5_000, `no hang: worst ${worst.toFixed(0)} ms`)
  const m = await g.metrics()
  const fails =
    sum(m, 'sluice_decisions_total', { decision: 'fail_open' }) +
    sum(m, 'sluice_decisions_total', { decision: 'fail_closed' }) +
    sum(m, 'sluice_decisions_total', { decision: 'fail_local' })
  t.ok(fails >= TOTAL * 0.5, `fail decisions counted (${fails})`)
  t.ok(
    g.events.get('ratelimit.store_error')! < 1000,
    `store_error lines bounded (${g.events.get('ratelimit.store_error')})`,
  )
  if (process.env.SLUICE_RELIABILITY_REPORT_MEM) {
    const { writeFileSync } = await import('node:fs')
    writeFileSync(
      process.env.SLUICE_RELIABILITY_REPORT_MEM,
      JSON.stringify({ samples, worst, statuses: [...statuses] }),
    )
  }
})
