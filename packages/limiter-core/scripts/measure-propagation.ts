/**
 * Propagation of a config change: the time from a write (SET + PUBLISH through ConfigRepository.put)
 * to another resolver, on separate connections, serving the new config. Prints p50/p99 over
 * `UPDATES` (default 100) updates against a throwaway loopback redis-server (or SLUICE_TEST_REDIS_URL).
 *
 * Run from packages/limiter-core (see docs/config.md):
 *   npx tap --reporter=tap --disable-coverage scripts/measure-propagation.ts
 */
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import { ConfigRepository, createConfigResolver, parseConfig } from '../src/config/index.js'

const UPDATES = Number(process.env.UPDATES ?? 100)

const redis = await startRedis()
const writer = new ConfigRepository(redis.client())
const reader = createConfigResolver({
  client: redis.client(),
  cacheTtlMs: 60_000,
  defaultGuardIntervalMs: 60_000,
})
await reader.start()
const app = uniquePrefix('prop')

const samples: number[] = []
for (let i = 1; i <= UPDATES; i++) {
  const config = parseConfig(
    { limits: [{ name: 'x', algorithm: 'fixed-window', limit: i, windowMs: 1000 }] },
    'm',
  )
  // Warm the reader's cache with the previous value so the change must arrive by pub/sub.
  await reader.resolve(app)
  const started = performance.now()
  await writer.put(app, config)
  for (;;) {
    const v = reader.resolve(app)
    const got = v instanceof Promise ? await v : v
    if (got.config.limits[0]?.limit === i) break
    await new Promise((r) => setImmediate(r))
  }
  samples.push(performance.now() - started)
}

samples.sort((a, b) => a - b)
const q = (p: number) =>
  samples[Math.min(samples.length - 1, Math.ceil(p * samples.length) - 1)] ?? Number.NaN
console.log(
  `# propagation over ${samples.length} updates (ms): p50=${q(0.5).toFixed(2)} p99=${q(0.99).toFixed(2)} max=${(samples.at(-1) ?? 0).toFixed(2)}`,
)
await reader.close()
await redis.stop()
