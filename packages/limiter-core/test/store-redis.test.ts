import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { createRedisClient, RedisStore, waitUntilReady } from '../src/index.js'
import { conformance } from './helpers/conformance.js'

conformance(t, async () => {
  const redis = await startRedis()
  const prefix = uniquePrefix('rl')
  const clients = Array.from({ length: 4 }, () => createRedisClient({ url: redis.url, timeoutMs: 2000 }))
  await Promise.all(clients.map((c) => waitUntilReady(c)))
  const probe = redis.client()
  return {
    stores: clients.map((client) => new RedisStore({ client, prefix, timeoutMs: 2000 })),
    prefix,
    pttl: (key) => probe.pttl(key),
    close: async () => {
      for (const c of clients) c.disconnect()
      await redis.stop()
    },
  }
})
