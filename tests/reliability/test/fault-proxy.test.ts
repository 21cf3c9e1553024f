// The fault proxy itself, against a real redis-server: every fault does what the suites rely on.
import { startRedis } from '@sluice/test-redis'
import { Redis } from 'ioredis'
import t from 'tap'
import { startFaultProxy } from '../src/fault-proxy.js'

const redis = await startRedis({ own: true })
const proxy = await startFaultProxy(redis.port)
t.teardown(async () => {
  await proxy.close()
  await redis.stop()
})

function client(extra: Record<string, unknown> = {}): Redis {
  const c = new Redis({
    host: proxy.host,
    port: proxy.port,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    ...extra,
  } as never)
  c.on('error', () => {})
  t.teardown(() => c.disconnect())
  return c
}

t.test('pass-through is transparent', async (t) => {
  const c = client()
  await c.set('k', 'v')
  t.equal(await c.get('k'), 'v')
  t.ok(proxy.stats.bytesUp > 0 && proxy.stats.bytesDown > 0)
})

t.test('latency delays every round trip and keeps order', async (t) => {
  const c = client()
  await c.ping()
  proxy.setLatency(150)
  const t0 = performance.now()
  const replies = await Promise.all([c.incr('n'), c.incr('n'), c.incr('n')])
  const ms = performance.now() - t0
  proxy.heal()
  t.same(replies, [1, 2, 3])
  t.ok(ms >= 250, `round trip took ${ms.toFixed(0)} ms (>= 2 x 150 ms expected)`)
})

t.test('black hole holds bytes; heal delivers them late, in order', async (t) => {
  const c = client({ commandTimeout: 200 })
  await c.ping()
  proxy.blackhole()
  await t.rejects(c.incr('bh'), /timed out/i)
  const fresh = new Redis({
    host: proxy.host,
    port: proxy.port,
    enableReadyCheck: false,
    commandTimeout: 300,
    maxRetriesPerRequest: 0,
  } as never)
  fresh.on('error', () => {})
  // A new connection is accepted (TCP) but nothing is answered.
  await t.rejects(fresh.ping(), /timed out/i)
  fresh.disconnect()
  proxy.heal()
  // The held INCR reached Redis after the heal.
  const direct = redis.client()
  let v: string | null = null
  for (let i = 0; i < 40 && v !== '1'; i++) {
    v = await direct.get('bh')
    if (v !== '1') await new Promise((r) => setTimeout(r, 25))
  }
  t.equal(v, '1', 'held command delivered after heal')
  t.equal(await c.incr('bh'), 2, 'the connection stays in sync after heal')
})

t.test('reset mid-command gives the client a connection error', async (t) => {
  const c = client({ retryStrategy: () => null })
  await c.ping()
  const before = proxy.stats.resets
  proxy.resetOnNextCommand()
  await t.rejects(c.set('half', 'x'.repeat(1000)))
  t.equal(proxy.stats.resets, before + 1)
  t.equal(await redis.client().exists('half'), 0, 'the half-sent command was not executed')
})

t.test('refuse closes new connections at once', async (t) => {
  proxy.refuse()
  const c = new Redis({
    host: proxy.host,
    port: proxy.port,
    lazyConnect: true,
    retryStrategy: () => null,
  } as never)
  c.on('error', () => {})
  await t.rejects(c.connect().then(() => c.ping()))
  c.disconnect()
  proxy.heal()
  const ok = client()
  t.equal(await ok.ping(), 'PONG', 'heal accepts again')
})
