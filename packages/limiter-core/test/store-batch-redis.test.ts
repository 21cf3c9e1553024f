import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import {
  compilePolicy,
  createRedisClient,
  keySlot,
  RedisStore,
  SCRIPTS,
  StoreOptionsError,
  StoreTimeoutError,
  waitUntilReady,
} from '../src/index.js'
import { conformance } from './helpers/conformance.js'

const DECIDE_BATCH_SCRIPT = SCRIPTS['decide-batch']

// The conformance suite, unchanged, against batching stores (standalone Redis).
t.test('conformance: RedisStore { batch: true } on a standalone Redis', async (t) => {
  conformance(t, async () => {
    const redis = await startRedis()
    const prefix = uniquePrefix('rl')
    const clients = Array.from({ length: 4 }, () => createRedisClient({ url: redis.url, timeoutMs: 2000 }))
    await Promise.all(clients.map((c) => waitUntilReady(c)))
    const probe = redis.client()
    return {
      // one store with a small maxBatch, so the 1000-concurrent checks also send full batches
      stores: clients.map(
        (client, i) =>
          new RedisStore({ client, prefix, timeoutMs: 2000, batch: i === 0 ? true : { maxBatch: 7 } }),
      ),
      prefix,
      pttl: (key) => probe.pttl(key),
      close: async () => {
        for (const c of clients) c.disconnect()
        await redis.stop()
      },
    }
  })
})

const redis = await startRedis({ own: true })
t.teardown(() => redis.stop())
const policy = compilePolicy([{ name: 'a', algorithm: 'sliding-log', limit: 50, windowMs: 60_000 }])

async function evalshaCalls(): Promise<number> {
  const info = await redis.client().info('commandstats')
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0)
}

t.test('N concurrent decisions made in one tick are one EVALSHA on the wire', async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 2000 })
  await waitUntilReady(client)
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, prefix: uniquePrefix('rl'), timeoutMs: 2000, batch: true })
  await store.decide('warm', policy, 1) // loads the script (EVAL on NOSCRIPT)
  const sent: string[] = []
  const orig = client.sendCommand.bind(client)
  client.sendCommand = ((cmd: { name: string }) => {
    sent.push(cmd.name)
    return orig(cmd as never)
  }) as typeof client.sendCommand
  const before = await evalshaCalls()
  sent.length = 0
  const policy3 = compilePolicy([
    { name: 'a', algorithm: 'sliding-log', limit: 50, windowMs: 60_000 },
    { name: 'b', algorithm: 'token-bucket', limit: 50, windowMs: 60_000 },
    { name: 'c', algorithm: 'fixed-window', limit: 50, windowMs: 60_000 },
  ])
  const ds = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      store.decide(`s${i % 3}`, i % 2 === 0 ? policy : policy3, 1 + (i % 2)),
    ),
  )
  t.same(sent, ['evalsha'], 'the client wrote one command')
  t.equal((await evalshaCalls()) - before, 1, 'INFO commandstats: one more EVALSHA')
  t.equal(ds.length, 60)
  for (const [i, d] of ds.entries()) {
    t.equal(d.limits.length, i % 2 === 0 ? 1 : 3, `decision ${i} got its own policy's reply`)
  }
  // each subject's decisions were serialized in call order: remaining strictly decreases
  for (let s = 0; s < 3; s++) {
    const rem = ds.filter((_, i) => i % 3 === s && i % 2 === 0).map((d) => d.limits[0]?.remaining ?? -1)
    t.same(
      rem,
      [...rem].sort((a, b) => b - a),
      `s${s}: remaining decreases in call order`,
    )
  }
})

t.test('maxBatch: a full group is sent at once, the rest on the next tick', async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 2000 })
  await waitUntilReady(client)
  t.teardown(() => client.disconnect())
  const store = new RedisStore({
    client,
    prefix: uniquePrefix('rl'),
    timeoutMs: 2000,
    batch: { maxBatch: 4 },
  })
  await store.decide('warm', policy, 1)
  const before = await evalshaCalls()
  const ds = await Promise.all(Array.from({ length: 10 }, () => store.decide('x', policy, 1)))
  t.equal((await evalshaCalls()) - before, 3, '4 + 4 + 2')
  t.same(
    ds.map((d) => d.limits[0]?.remaining),
    [49, 48, 47, 46, 45, 44, 43, 42, 41, 40],
  )
})

t.test(
  'a paused Redis: every decision of the batch rejects with StoreTimeoutError within the budget',
  async (t) => {
    const client = createRedisClient({ url: redis.url, timeoutMs: 5000 })
    await waitUntilReady(client)
    t.teardown(() => client.disconnect())
    const store = new RedisStore({ client, prefix: uniquePrefix('rl'), timeoutMs: 100, batch: true })
    t.equal((await store.decide('s', policy, 1)).allowed, true)
    await redis.pause()
    const started = Date.now()
    const errs = await Promise.all(
      Array.from({ length: 5 }, () => store.decide('s', policy, 1).catch((e: unknown) => e)),
    )
    const took = Date.now() - started
    await redis.resume()
    for (const e of errs) t.type(e, StoreTimeoutError)
    t.ok(took >= 90 && took < 1500, `rejected after ~100 ms (${took} ms)`)
    t.equal((await store.decide('s', policy, 1)).allowed, true, 'answers again after resume')
  },
)

t.test('NOSCRIPT: the batch falls back to EVAL', async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 2000 })
  await waitUntilReady(client)
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, prefix: uniquePrefix('rl'), batch: true, timeoutMs: 2000 })
  await redis.client().script('FLUSH')
  const ds = await Promise.all([store.decide('n', policy, 1), store.decide('n', policy, 1)])
  t.same(
    ds.map((d) => d.limits[0]?.remaining),
    [49, 48],
  )
})

t.test('a malformed batch call writes nothing and is an error reply', async (t) => {
  const probe = redis.client()
  const key = `${uniquePrefix('rl')}:{m}:a:sl:60000`
  await t.rejects(
    probe.eval(DECIDE_BATCH_SCRIPT.source, 2, key, key, 2, 1, 1, 0, 'sl', 5, 60000, 1, 0, 0, 'sl', 5, 60000),
    /cost must be/,
  )
  t.equal(await probe.exists(key), 0, 'the valid first decision was not applied')
  await t.rejects(probe.eval(DECIDE_BATCH_SCRIPT.source, 1, key, 2, 1, 1, 0, 'sl', 5, 60000), /does not fit/)
})

t.test('regression (late replay): a batched decision past its deadline counts nothing', async (t) => {
  const probe = redis.client()
  const key = `${uniquePrefix('rl')}:{late}:a:sl:60000`
  const past = Date.now() - 60_000
  const reply = (await probe.eval(
    DECIDE_BATCH_SCRIPT.source,
    2,
    key,
    key,
    2,
    1,
    1,
    past,
    'sl',
    5,
    60000,
    1,
    1,
    0,
    'sl',
    5,
    60000,
  )) as number[][]
  t.equal(reply[0]?.length, 1, 'the expired decision answers { now_ms } alone')
  t.equal(reply[1]?.length, 5, 'the one without a deadline is decided')
  t.equal(await probe.zcard(key), 1, 'only the live decision was counted')
})

t.test('batch option validation', async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 2000 })
  t.teardown(() => client.disconnect())
  t.throws(() => new RedisStore({ client, batch: { maxBatch: 0 } }), StoreOptionsError)
  t.throws(() => new RedisStore({ client, batch: 'yes' as never }), StoreOptionsError)
  t.equal(new RedisStore({ client, batch: true }).maxBatch, 128)
  t.equal(new RedisStore({ client }).maxBatch, 0)
})

t.test('keySlot is the Redis Cluster slot (CLUSTER KEYSLOT reference values)', async (t) => {
  // values from the Redis Cluster specification / CLUSTER KEYSLOT
  t.equal(keySlot('123456789'), 12739)
  t.equal(keySlot('foo'), 12182)
  t.equal(keySlot('{user1000}.following'), keySlot('user1000'))
  t.equal(keySlot('rl:{app}:a:sl:1000'), keySlot('app'))
  t.equal(keySlot('foo{}bar'), keySlot('foo{}bar'), 'an empty tag hashes the whole key')
})
