import t from 'tap'
import { startCluster, startRedis, uniquePrefix, waitReady } from '../src/index.js'

t.test('standalone: starts, answers, pauses, restarts empty, stops', async (t) => {
  const redis = await startRedis({ own: true })
  t.teardown(() => redis.stop())
  const c = redis.client({ enableOfflineQueue: false, commandTimeout: 200 })
  await waitReady(c)
  await c.set('k', 'v')
  t.equal(await c.get('k'), 'v')

  await redis.pause()
  await t.rejects(c.ping(), 'a paused server does not answer')
  await redis.resume()
  t.equal(await c.ping(), 'PONG')

  await redis.restart()
  const c2 = redis.client()
  t.equal(await c2.get('k'), null, 'restarted empty')
  await redis.stop()
  await t.rejects(redis.client({ maxRetriesPerRequest: 0, retryStrategy: () => null }).ping(), 'stopped')
})

t.test('uniquePrefix is unique', async (t) => {
  const seen = new Set(Array.from({ length: 1000 }, () => uniquePrefix('x')))
  t.equal(seen.size, 1000)
  t.match(uniquePrefix('abc'), /^abc-[0-9a-f]{10}$/)
})

t.test('cluster: 3 masters, keys spread over slots, hash tags colocate', async (t) => {
  const cluster = await startCluster()
  t.teardown(() => cluster.stop())
  t.equal(cluster.nodes.length, 3)
  t.match(cluster.seeds, /^127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/)
  const c = cluster.client()
  for (let i = 0; i < 20; i++) await c.set(`key-${i}`, String(i))
  const sizes = await Promise.all(c.nodes('master').map((n) => n.dbsize()))
  t.equal(sizes.length, 3)
  t.ok(
    sizes.every((s) => s > 0),
    `keys on every master: ${sizes.join(',')}`,
  )
  const reply = await c.eval(
    "return redis.call('SET', KEYS[1], '1') and redis.call('SET', KEYS[2], '2')",
    2,
    '{a}:1',
    '{a}:2',
  )
  t.equal(reply, 'OK', 'same-tag keys in one script')
})
