// After Redis restarts (empty), the config subscriber must resubscribe, so a
// config written and PUBLISHed afterwards is picked up at once, not only after CONFIG_CACHE_TTL_MS
// (60 s here). The default config must also be restored (contract section 3).
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { eventually, putConfig } from '../src/configs.js'
import { startInProcess } from '../src/in-process.js'

const redis = await startRedis({ own: true })
const direct = redis.client()
const g = await startInProcess({
  REDIS_URL: redis.url,
  CONFIG_CACHE_TTL_MS: '60000',
  REDIS_TIMEOUT_MS: '200',
})
t.teardown(async () => {
  await g.close()
  await redis.stop()
})
const app = uniquePrefix('pubsub')
const cfg = (limit: number) => ({
  limits: [{ name: 'l', algorithm: 'fixed-window' as const, limit, windowMs: 3_600_000 }],
})
const limitSeen = async () => {
  const r = await g.request(app)
  const limits = (r.json().limits ?? []) as { limit: number }[]
  return r.status === 200 ? limits[0]?.limit : undefined
}

t.test('a PUBLISH after a Redis restart is picked up at once', async (t) => {
  await putConfig(direct, app, cfg(111))
  await eventually('first config', async () => (await limitSeen()) === 111, 5_000)
  await redis.restart()
  // wait until the gateway decides on the new (empty) Redis again
  await eventually(
    'deciding again',
    async () => (await g.request(app)).json().outcome === 'allowed',
    20_000,
    100,
  )
  const fresh = redis.client()
  await eventually(
    'default config restored',
    async () => (await fresh.exists('rateLimitConfig:default')) === 1,
    20_000,
  )
  t.pass('rateLimitConfig:default restored after the restart')
  // the subscriber may need a moment to reconnect: publish until seen, bounded well below the TTL
  const t0 = Date.now()
  const ms = await eventually(
    'config published after the restart picked up',
    async () => {
      await putConfig(fresh, app, cfg(222))
      return (await limitSeen()) === 222
    },
    15_000,
    250,
  )
  t.ok(ms < 15_000, `picked up ${Date.now() - t0} ms after the first PUBLISH (TTL is 60000 ms)`)
})
