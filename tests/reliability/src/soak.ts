/**
 * Soak: run the built gateway on a Redis of its own at a steady load for a while (default 10
 * minutes) and sample, every few seconds, the gateway's heap, RSS and event-loop delay (from its
 * /metrics) and Redis's key counts. Asserts that nothing grows past its bound and that every
 * `rl:*` key has a TTL; writes the samples to JSON and an SVG chart.
 *
 *   node tests/reliability/dist/soak.js [--duration 600] [--rate 200] [--apps 20] [--sample 5] [--out dir]
 *
 * (--duration and --sample in seconds; --out defaults to $TMPDIR/sluice-soak.)
 *
 * Exit code 0: every bound held; 1: a bound failed (printed); 2: the run itself failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startRedis } from '@sluice/test-redis'
import { Pool } from 'undici'
import { putConfig } from './configs.js'
import { startGateway } from './gateway-process.js'
import { sum, value } from './metrics.js'
import { chart } from './svg.js'

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    rate: { type: 'string', default: '200' },
    apps: { type: 'string', default: '20' },
    sample: { type: 'string', default: '5' },
    out: { type: 'string', default: join(tmpdir(), 'sluice-soak') },
  },
})
const DURATION_S = Number(args.duration)
const RATE = Number(args.rate)
const APPS = Number(args.apps)
const SAMPLE_S = Number(args.sample)
/** Bounds: heap may not grow more than this between the first and last quarter (MB). */
const HEAP_GROWTH_MB = 32
/** Event-loop delay p99 must stay below this (ms). */
const LOOP_P99_MS = 250
/** The rl:* key count of the last half may exceed the first half's max by this factor at most. */
const KEY_GROWTH = 1.5

export interface SoakSample {
  t: number
  heapMb: number
  rssMb: number
  loopP99Ms: number
  dbsize: number
  rlKeys: number
  rlNoTtl: number
  sent: number
  allowed: number
  blocked: number
  other: number
  decisions: number
}

async function main(): Promise<number> {
  const redis = await startRedis({ own: true })
  const direct = redis.client()
  const algorithms = ['sliding-log', 'sliding-window', 'token-bucket', 'fixed-window'] as const
  for (let i = 0; i < APPS; i++) {
    const a = algorithms[i % 4]!
    await putConfig(direct, `soak-${i}`, {
      limits: [
        { name: 'fast', algorithm: a, limit: 5 + (i % 7), windowMs: 1_000 + 500 * (i % 5) },
        { name: 'slow', algorithm: a === 'sliding-log' ? 'sliding-window' : a, limit: 200, windowMs: 30_000 },
      ],
      failMode: (['open', 'closed', 'local'] as const)[i % 3]!,
    })
  }
  const gw = await startGateway({ env: { REDIS_URL: redis.url, LOG_LEVEL: 'warn', REDIS_TIMEOUT_MS: '100' } })
  const pool = new Pool(gw.origin, { connections: 32 })
  const samples: SoakSample[] = []
  let sent = 0
  let allowed = 0
  let blocked = 0
  let other = 0
  const otherKinds = new Map<string, number>()
  const noteOther = (k: string) => {
    other++
    otherKinds.set(k, (otherKinds.get(k) ?? 0) + 1)
  }
  let inflight = 0
  const t0 = Date.now()
  const end = t0 + DURATION_S * 1000
  // open loop: every 50 ms, RATE/20 requests; appIds rotate (a new family of churned ids every
  // 30 s, whose keys must expire) next to the steady apps
  const tick = setInterval(() => {
    const n = Math.max(1, Math.round(RATE / 20))
    const epoch = Math.floor((Date.now() - t0) / 30_000)
    for (let k = 0; k < n; k++) {
      if (inflight > 2000) break
      const i = sent++
      const appId = i % 5 === 4 ? `churn-${epoch}-${i % 97}` : `soak-${i % APPS}`
      inflight++
      pool
        .request({ path: '/soak', method: 'GET', headers: { 'x-app-id': appId }, headersTimeout: 10_000 })
        .then(async (r) => {
          await r.body.dump()
          if (r.statusCode === 200) allowed++
          else if (r.statusCode === 429) blocked++
          else noteOther(String(r.statusCode))
        })
        .catch((err: unknown) => {
          noteOther((err as Error).name ?? 'error')
        })
        .finally(() => {
          inflight--
        })
    }
  }, 50)
  const sampleOnce = async () => {
    const m = await gw.metrics()
    let rlKeys = 0
    let rlNoTtl = 0
    let cursor = '0'
    do {
      const [next, keys] = await direct.scan(cursor, 'MATCH', 'rl:*', 'COUNT', 1000)
      cursor = next
      rlKeys += keys.length
      if (keys.length > 0) {
        const pipe = direct.pipeline()
        for (const k of keys) pipe.pttl(k)
        for (const [, ttl] of (await pipe.exec()) ?? []) if (Number(ttl) === -1) rlNoTtl++
      }
    } while (cursor !== '0')
    samples.push({
      t: Math.round((Date.now() - t0) / 100) / 10,
      heapMb: (value(m, 'nodejs_heap_size_used_bytes') ?? 0) / 2 ** 20,
      rssMb: (value(m, 'process_resident_memory_bytes') ?? 0) / 2 ** 20,
      loopP99Ms: (value(m, 'nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000,
      dbsize: await direct.dbsize(),
      rlKeys,
      rlNoTtl,
      sent,
      allowed,
      blocked,
      other,
      decisions: sum(m, 'sluice_decisions_total'),
    })
    const s = samples.at(-1)!
    process.stdout.write(
      `t=${s.t}s heap=${s.heapMb.toFixed(1)}MB rss=${s.rssMb.toFixed(0)}MB loopP99=${s.loopP99Ms.toFixed(1)}ms rl=${s.rlKeys} noTtl=${s.rlNoTtl} sent=${s.sent} 200=${s.allowed} 429=${s.blocked} other=${s.other}\n`,
    )
  }
  try {
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, SAMPLE_S * 1000))
      await sampleOnce()
    }
  } finally {
    clearInterval(tick)
    await new Promise((r) => setTimeout(r, 500))
    await pool.close().catch(() => {})
    await gw.stop()
    await redis.stop()
  }

  // --- bounds --------------------------------------------------------------------------------
  const failures: string[] = []
  const q = Math.max(1, Math.floor(samples.length / 4))
  const firstQ = samples.slice(1, q + 1)
  const lastQ = samples.slice(-q)
  // the floor (min) of each quarter: heap used saw-tooths with GC, a leak lifts the floor
  const floor = (xs: SoakSample[]) => Math.min(...xs.map((s) => s.heapMb))
  const heapGrowth = floor(lastQ) - floor(firstQ)
  if (heapGrowth > HEAP_GROWTH_MB)
    failures.push(`heap grew ${heapGrowth.toFixed(1)} MB > ${HEAP_GROWTH_MB} MB`)
  const loopWorst = Math.max(...samples.map((s) => s.loopP99Ms))
  if (loopWorst > LOOP_P99_MS)
    failures.push(`event-loop p99 reached ${loopWorst.toFixed(1)} ms > ${LOOP_P99_MS} ms`)
  const half = Math.floor(samples.length / 2)
  const keysFirst = Math.max(...samples.slice(0, half).map((s) => s.rlKeys))
  const keysLast = Math.max(...samples.slice(half).map((s) => s.rlKeys))
  if (keysLast > keysFirst * KEY_GROWTH + 50) failures.push(`rl:* keys grew ${keysFirst} -> ${keysLast}`)
  const noTtl = Math.max(...samples.map((s) => s.rlNoTtl))
  if (noTtl > 0) failures.push(`${noTtl} rl:* keys without a TTL`)
  const otherTotal = samples.at(-1)?.other ?? 0
  // store timeouts on a loaded machine are answered by the fail mode (503 for closed apps): allowed
  // as long as they stay rare
  const sentTotal = samples.at(-1)?.sent ?? 1
  if (otherTotal > sentTotal * 0.001) failures.push(`${otherTotal} answers other than 200/429 (> 0.1%)`)

  const summary = {
    durationS: DURATION_S,
    rate: RATE,
    apps: APPS,
    requests: samples.at(-1)?.sent ?? 0,
    heapGrowthMb: Number(heapGrowth.toFixed(2)),
    heapMaxMb: Number(Math.max(...samples.map((s) => s.heapMb)).toFixed(1)),
    loopP99WorstMs: Number(loopWorst.toFixed(1)),
    rlKeysFirstHalfMax: keysFirst,
    rlKeysSecondHalfMax: keysLast,
    rlKeysWithoutTtl: noTtl,
    otherAnswers: Object.fromEntries(otherKinds),
    failures,
  }
  mkdirSync(args.out, { recursive: true })
  writeFileSync(join(args.out, 'soak.json'), `${JSON.stringify({ summary, samples }, null, 1)}\n`)
  const xy = (f: (s: SoakSample) => number) => samples.map((s) => [s.t, Number(f(s).toFixed(2))] as const)
  writeFileSync(
    join(args.out, 'reliability-soak.svg'),
    chart(`Sluice soak: ${DURATION_S} s at ${RATE} req/s over ${APPS} apps + churned appIds`, [
      { title: 'gateway heap used', unit: 'MB', points: xy((s) => s.heapMb), color: '#1f77b4' },
      {
        title: 'event-loop delay p99',
        unit: 'ms',
        points: xy((s) => s.loopP99Ms),
        bound: LOOP_P99_MS,
        color: '#ff7f0e',
      },
      { title: 'Redis rl:* keys', unit: 'keys', points: xy((s) => s.rlKeys), color: '#2ca02c' },
    ]),
  )
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  return failures.length === 0 ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? err.stack : String(err)}\n`)
    process.exit(2)
  },
)
