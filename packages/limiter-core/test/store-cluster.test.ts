import { startCluster, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { createRedisClient, RedisStore, waitUntilReady } from '../src/index.js'
import { conformance } from './helpers/conformance.js'

conformance(t, async () => {
  const cluster = await startCluster({ masters: 3, replicas: 0 })
  const prefix = uniquePrefix('rl')
  const clients = Array.from({ length: 4 }, () =>
    createRedisClient({ clusterNodes: cluster.seeds.split(','), timeoutMs: 2000 }),
  )
  await Promise.all(clients.map((c) => waitUntilReady(c, 10_000)))
  const probe = cluster.client()
  return {
    stores: clients.map((client) => new RedisStore({ client, prefix, timeoutMs: 2000 })),
    prefix,
    pttl: (key) => probe.pttl(key),
    close: async () => {
      for (const c of clients) c.disconnect()
      await cluster.stop()
    },
  }
})
