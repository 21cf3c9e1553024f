/**
 * Figures for docs/algorithms.md: `pnpm --filter @sluice/limiter-core measure`.
 *
 * 1. Redis `MEMORY USAGE` of one subject's counter key per algorithm, at limit 100 and 10000, with
 *    the counter full (sliding-log: `limit` entries), on a throwaway redis-server (@sluice/test-redis).
 * 2. The sliding-window approximation against the exact sliding-log, on the memory store (the same
 *    arithmetic as the Lua) with an injected clock: Poisson arrivals at 1.5x the limit over many
 *    windows, seeded; over-admission = requests admitted inside some trailing window beyond `limit`.
 */
import { startRedis } from '@sluice/test-redis'
import {
  ALGORITHMS,
  compilePolicy,
  counterKey,
  createRedisClient,
  MemoryStore,
  RedisStore,
  waitUntilReady,
} from '../src/index.js'

function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function memoryUsage(): Promise<void> {
  const redis = await startRedis({ own: true })
  const client = createRedisClient({ url: redis.url, timeoutMs: 5000 })
  await waitUntilReady(client)
  const store = new RedisStore({ client, timeoutMs: 5000 })
  const info = await client.info('server')
  console.log(
    `## MEMORY USAGE per subject (redis ${/redis_version:(\S+)/.exec(info)?.[1]}, bytes, counter full)\n`,
  )
  console.log('| algorithm | limit 100 | limit 10000 |')
  console.log('| --- | --- | --- |')
  for (const algorithm of ALGORITHMS) {
    const row: number[] = []
    for (const limit of [100, 10_000]) {
      const policy = compilePolicy([{ name: 'm', algorithm, limit, windowMs: 3_600_000 }])
      const subject = `mem-${algorithm}-${limit}`
      if (algorithm === 'sliding-log') {
        for (let i = 0; i < limit; i++) await store.decide(subject, policy, 1)
      } else {
        await store.decide(subject, policy, limit)
      }
      const key = counterKey('rl', subject, policy.keySuffixes[0] as string)
      row.push(Number(await client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')))
    }
    console.log(`| ${algorithm} | ${row[0]} | ${row[1]} |`)
  }
  client.disconnect()
  await redis.stop()
}

function approximation(
  limit: number,
  windowMs: number,
  windows: number,
  rateFactor: number,
  seed: number,
): void {
  const rnd = mulberry32(seed)
  let now = 1_700_000_000_000
  const clock = () => now
  const sw = new MemoryStore({ now: clock, sweepIntervalMs: 0 })
  const sl = new MemoryStore({ now: clock, sweepIntervalMs: 0 })
  const pSw = compilePolicy([{ name: 'w', algorithm: 'sliding-window', limit, windowMs }])
  const pSl = compilePolicy([{ name: 'l', algorithm: 'sliding-log', limit, windowMs }])
  const meanGapMs = windowMs / (limit * rateFactor)
  const end = now + windows * windowMs
  const admittedSw: number[] = []
  let offered = 0
  let nSw = 0
  let nSl = 0
  let maxOver = 0
  let overSum = 0
  let overSamples = 0
  let wrong = 0
  let head = 0
  while (now < end) {
    now += Math.max(0, Math.round(-Math.log(1 - rnd()) * meanGapMs))
    offered++
    if (sl.decideSync('s', pSl, 1).allowed) nSl++
    if (sw.decideSync('s', pSw, 1).allowed) {
      nSw++
      admittedSw.push(now)
      while ((admittedSw[head] as number) <= now - windowMs) head++
      const inWindow = admittedSw.length - head // admitted by sliding-window in (now - W, now]
      const over = Math.max(0, inWindow - limit)
      maxOver = Math.max(maxOver, over)
      overSum += over
      if (over > 0) wrong++
      overSamples++
    }
  }
  const pct = (x: number) => `${((100 * x) / limit).toFixed(2)}%`
  console.log(
    `| ${limit} | ${windowMs} | ${windows} | ${rateFactor}x | ${offered} | ${nSl} | ${nSw} | ${((100 * (nSw - nSl)) / nSl).toFixed(2)}% | ${maxOver} (${pct(maxOver)}) | ${pct(overSum / overSamples)} | ${((100 * wrong) / nSw).toFixed(2)}% |`,
  )
}

await memoryUsage()
console.log('\n## sliding-window vs sliding-log, Poisson arrivals (seeded)\n')
console.log(
  '| limit | windowMs | windows | offered rate | offered | sliding-log admitted | sliding-window admitted | difference | max over-admission in a trailing window | mean over-admission per admitted request | admitted requests over the limit in their trailing window |',
)
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
approximation(100, 60_000, 1000, 1.5, 1)
approximation(100, 60_000, 1000, 1.1, 2)
approximation(1000, 60_000, 200, 1.5, 3)
approximation(10, 1000, 5000, 1.5, 4)
approximation(100, 60_000, 1000, 3, 5)
