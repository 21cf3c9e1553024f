import { startCluster, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { compilePolicy, createRedisClient, keySlot, RedisStore, waitUntilReady } from '../src/index.js'
import { conformance } from './helpers/conformance.js'

const cluster = await startCluster({ masters: 3, replicas: 0 })
t.teardown(() => cluster.stop())

// The conformance suite, unchanged, against batching stores on a 3-master Redis Cluster.
t.test('conformance: RedisStore { batch: true } on a Redis Cluster', async (t) => {
  conformance(t, async () => {
    const prefix = uniquePrefix('rl')
    const clients = Array.from({ length: 4 }, () =>
      createRedisClient({ clusterNodes: cluster.seeds.split(','), timeoutMs: 2000 }),
    )
    await Promise.all(clients.map((c) => waitUntilReady(c, 10_000)))
    const probe = cluster.client()
    return {
      stores: clients.map(
        (client, i) =>
          new RedisStore({ client, prefix, timeoutMs: 2000, batch: i === 0 ? true : { maxBatch: 7 } }),
      ),
      prefix,
      pttl: (key) => probe.pttl(key),
      close: async () => {
        for (const c of clients) c.disconnect()
      },
    }
  })
})

t.test('decisions of one tick are grouped by hash slot: one EVALSHA per slot, no CROSSSLOT', async (t) => {
  const client = createRedisClient({ clusterNodes: cluster.seeds.split(','), timeoutMs: 2000 })
  await waitUntilReady(client, 10_000)
  t.teardown(() => client.disconnect())
  const probe = cluster.client()
  for (const s of ['a', 'b', 'c', 'd', 'e', 'f']) {
    t.equal(Number(await probe.cluster('KEYSLOT', `x:{${s}}:y`)), keySlot(`x:{${s}}:y`), `slot of {${s}}`)
  }
  const store = new RedisStore({ client, prefix: uniquePrefix('rl'), timeoutMs: 2000, batch: true })
  const policy = compilePolicy([{ name: 'a', algorithm: 'sliding-log', limit: 20, windowMs: 60_000 }])
  const subjects = ['a', 'b', 'c', 'd', 'e', 'f'].map((s) => uniquePrefix(s))
  await Promise.all(subjects.map((s) => store.decide(s, policy, 1))) // load the script on every node
  let evalsha = 0
  const orig = client.sendCommand.bind(client)
  client.sendCommand = ((cmd: { name: string }) => {
    if (cmd.name === 'evalsha') evalsha++
    return orig(cmd as never)
  }) as typeof client.sendCommand
  const ds = await Promise.all(
    Array.from({ length: 60 }, (_, i) => store.decide(subjects[i % 6] as string, policy, 1)),
  )
  const slots = new Set(subjects.map((s) => keySlot(s)))
  t.equal(evalsha, slots.size, `one EVALSHA per slot (${slots.size})`)
  for (const [i, s] of subjects.entries()) {
    t.same(
      ds.filter((_, j) => j % 6 === i).map((d) => d.limits[0]?.remaining),
      [18, 17, 16, 15, 14, 13, 12, 11, 10, 9],
      `${s}: serialized in call order`,
    )
  }
})
