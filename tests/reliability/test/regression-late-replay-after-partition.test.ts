// Regression probe: a decision that timed out (and was answered by the fail mode) must not be
// counted later. During a network partition the limiter's commands sit in TCP buffers; when the
// partition heals they reach Redis late and, unless the connection was dropped at the timeout,
// Redis executes them: requests already answered `503` (failMode closed) then spend the app's
// budget after the fact ("a rejected request consumes nothing", contract section 4), and requests
// already answered `fail_open` are counted into a window they were never decided in.
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { putConfig, sleep } from '../src/configs.js'
import { startFaultProxy } from '../src/fault-proxy.js'
import { startInProcess } from '../src/in-process.js'

const redis = await startRedis({ own: true })
const proxy = await startFaultProxy(redis.port)
const direct = redis.client()
const app = uniquePrefix('replay')
await putConfig(direct, app, {
  limits: [{ name: 'exact', algorithm: 'sliding-log', limit: 10, windowMs: 600_000 }],
  failMode: 'closed',
})
const g = await startInProcess({
  REDIS_URL: proxy.url,
  REDIS_TIMEOUT_MS: '100',
  CONFIG_CACHE_TTL_MS: '60000',
})
t.teardown(async () => {
  await g.close()
  await proxy.close()
  await redis.stop()
})

const keyCount = async () => {
  const keys = await direct.keys(`rl:{${app}}*`)
  let n = 0
  for (const k of keys) n += await direct.zcard(k)
  return n
}

t.test('requests answered 503 during a partition are not counted when it heals', async (t) => {
  // warm: config cached, connection up; nothing counted yet
  const warm = await g.request(app, '/warm')
  t.equal(warm.status, 200, 'decided by Redis before the partition')
  await direct.del(`rl:{${app}}:exact:sl:600000`)
  t.equal(await keyCount(), 0, 'counter empty')
  proxy.blackhole()
  const during = await Promise.all(Array.from({ length: 8 }, () => g.request(app)))
  t.ok(
    during.every((r) => r.status === 503),
    `all answered 503 during the partition (${during.map((r) => r.status)})`,
  )
  proxy.heal()
  await sleep(1_000)
  const counted = await keyCount()
  t.equal(counted, 0, `${counted} of 8 requests answered 503 were counted after the heal`)
})

t.test('requests answered 503 while Redis is paused (SIGSTOP) are not counted when it resumes', async (t) => {
  await sleep(1_500) // let the circuit breaker close again
  const warm = await g.request(app, '/warm')
  t.not(warm.status, 0, 'gateway up')
  for (const k of await direct.keys(`rl:{${app}}*`)) await direct.del(k)
  t.equal(await keyCount(), 0, 'counter empty')
  await redis.pause()
  const during = await Promise.all(Array.from({ length: 8 }, () => g.request(app)))
  await redis.resume()
  t.ok(
    during.every((r) => r.status === 503),
    `all answered 503 while paused (${during.map((r) => r.status)})`,
  )
  await sleep(1_000)
  const counted = await keyCount()
  t.equal(counted, 0, `${counted} of 8 requests answered 503 were counted after the resume`)
})
