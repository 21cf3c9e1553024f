import { freePort, startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import {
  compilePolicy,
  createRedisClient,
  parseDecision,
  RedisStore,
  reconnectBackoff,
  SluiceStoreError,
  StoreConnectionError,
  StoreScriptError,
  StoreTimeoutError,
  waitUntilReady,
} from '../src/index.js'

const redis = await startRedis({ own: true })
t.teardown(() => redis.stop())
const policy = compilePolicy([{ name: 'a', algorithm: 'token-bucket', limit: 5, windowMs: 1000 }])

t.test('a paused Redis: decide rejects with StoreTimeoutError after timeoutMs, then recovers', async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 5000 })
  await waitUntilReady(client)
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, prefix: uniquePrefix('rl'), timeoutMs: 100 })
  t.equal((await store.decide('s', policy, 1)).allowed, true)
  await redis.pause()
  const started = Date.now()
  const err = await store.decide('s', policy, 1).catch((e: unknown) => e)
  const took = Date.now() - started
  await redis.resume()
  t.type(err, StoreTimeoutError)
  t.type(err, SluiceStoreError)
  t.match(err, { kind: 'timeout', code: 'SLUICE_ERR_STORE_TIMEOUT', timeoutMs: 100, statusCode: 503 })
  t.ok(took >= 90 && took < 1500, `rejected after ~100 ms (${took} ms), no hang`)
  t.equal((await store.decide('s', policy, 1)).allowed, true, 'answers again after resume')
})

t.test("the client's own commandTimeout is classified as a timeout too", async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 80 })
  await waitUntilReady(client)
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, prefix: uniquePrefix('rl'), timeoutMs: 5000 })
  await redis.pause()
  const err = await store.decide('s', policy, 1).catch((e: unknown) => e)
  await redis.resume()
  t.match(err, { kind: 'timeout', code: 'SLUICE_ERR_STORE_TIMEOUT' })
})

t.test('a client that is not ready: StoreConnectionError at once, never queued', async (t) => {
  const port = await freePort()
  const client = createRedisClient({ url: `redis://127.0.0.1:${port}`, timeoutMs: 100 })
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, timeoutMs: 100 })
  const started = Date.now()
  const err = await store.decide('s', policy, 1).catch((e: unknown) => e)
  t.type(err, StoreConnectionError)
  t.match(err, { kind: 'connection', code: 'SLUICE_ERR_STORE_CONNECTION', statusCode: 503 })
  t.ok(Date.now() - started < 50, 'fails fast')
})

t.test('Redis killed: fast connection errors; restarted: the client recovers by itself', async (t) => {
  const client = createRedisClient({ url: redis.url, timeoutMs: 200, maxBackoffMs: 200 })
  await waitUntilReady(client)
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client, prefix: uniquePrefix('rl'), timeoutMs: 200 })
  t.equal((await store.decide('s', policy, 1)).allowed, true)
  await redis.kill()
  await new Promise((r) => setTimeout(r, 100))
  for (let i = 0; i < 3; i++) {
    const started = Date.now()
    const err = await store.decide('s', policy, 1).catch((e: unknown) => e)
    t.type(err, SluiceStoreError, `attempt ${i}: a store error`)
    t.ok(Date.now() - started < 500, 'bounded by the timeout, no hang')
  }
  await redis.restart()
  await waitUntilReady(client, 5000)
  const d = await store.decide('s', policy, 1)
  t.equal(d.allowed, true, 'decides again (on an empty Redis, after NOSCRIPT -> EVAL)')
  t.equal(d.limits[0]?.remaining, 4)
})

t.test('reply shape is checked: a wrong shape is a StoreScriptError', async (t) => {
  const two = compilePolicy([
    { name: 'a', algorithm: 'fixed-window', limit: 5, windowMs: 1000 },
    { name: 'b', algorithm: 'sliding-log', limit: 5, windowMs: 1000 },
  ])
  const good = [1000, 1, 4, 10, 0, 0, 0, 10, 7]
  const d = parseDecision(good, two)
  t.match(d, { allowed: false, blockedBy: 'b', retryAfterMs: 7, nowMs: 1000 })
  t.same(
    d.limits.map((l) => [l.name, l.allowed, l.remaining, l.resetMs, l.retryAfterMs, l.limit]),
    [
      ['a', true, 4, 10, 0, 5],
      ['b', false, 0, 10, 7, 5],
    ],
  )
  for (const bad of [
    null,
    'OK',
    [],
    ['1000'],
    [1000, 1, 4, 10, 0],
    [1000, 1, 4, 10, 0, 1, 4, 10],
    [1000, 2, 4, 10, 0, 1, 4, 10, 0],
    [1000, 1, '4', 10, 0, 1, 4, 10, 0],
    [1000, 1, -1, 10, 0, 1, 4, 10, 0],
    [1000, 1, 4.5, 10, 0, 1, 4, 10, 0],
    [1000, 0, 4, 10, 0, 1, 4, 10, 0],
  ]) {
    t.throws(() => parseDecision(bad, two), StoreScriptError, `rejects ${JSON.stringify(bad)}`)
  }
  t.throws(
    () => parseDecision([1000], two, 100),
    StoreTimeoutError,
    '{ now_ms } alone: the call ran past its deadline, a timeout (nothing was counted)',
  )
})

t.test('createRedisClient: options are validated; fail-fast settings', async (t) => {
  t.throws(() => createRedisClient({ url: 'http://x' }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
  t.throws(() => createRedisClient({ clusterNodes: ['nohost'] }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
  t.throws(() => createRedisClient({ timeoutMs: 0 }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
  const c = createRedisClient({ url: redis.url, timeoutMs: 123, password: 'pw' })
  t.teardown(() => c.disconnect())
  if ('options' in c) {
    t.match(c.options, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 123,
      password: 'pw',
    })
  }
  t.same(
    [0, 1, 2, 3, 5, 10, 100, 10_000].map((n) => reconnectBackoff(n)),
    [50, 100, 200, 400, 1600, 2000, 2000, 2000],
    'min(50 * 2^n, 2000), forever',
  )
  t.throws(() => new RedisStore({ client: c, prefix: 'a{b' }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
  t.throws(() => new RedisStore({ client: c, timeoutMs: -1 }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
})
