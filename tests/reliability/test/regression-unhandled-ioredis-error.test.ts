// Regression (bug in @sluice/limiter-core, config resolver): the subscriber connection the resolver
// creates with `client.duplicate()` has no 'error' listener, so when Redis resets the connection
// ioredis prints "[ioredis] Unhandled error event: Error: read ECONNRESET" with console.error:
// a non-JSON line on stderr outside pino (contract section 7: logs are JSON lines), one per
// reconnect attempt. Every client the gateway creates must handle 'error'.
import { startRedis } from '@sluice/test-redis'
import t from 'tap'
import { sleep } from '../src/configs.js'
import { startFaultProxy } from '../src/fault-proxy.js'
import { startInProcess } from '../src/in-process.js'

const redis = await startRedis({ own: true })
const proxy = await startFaultProxy(redis.port)
const g = await startInProcess({ REDIS_URL: proxy.url, REDIS_TIMEOUT_MS: '100' })
t.teardown(async () => {
  await g.close()
  await proxy.close()
  await redis.stop()
})

t.test('connection resets print no unhandled ioredis error', async (t) => {
  const seen: string[] = []
  const original = console.error
  console.error = (...args: unknown[]) => {
    const line = args.map(String).join(' ')
    if (line.includes('Unhandled error event')) seen.push(line)
    else original(...args)
  }
  t.teardown(() => {
    console.error = original
  })
  await g.request('unhandled-app')
  for (let i = 0; i < 3; i++) {
    proxy.resetAll()
    await sleep(300)
  }
  await g.request('unhandled-app')
  t.same(seen, [], `no "[ioredis] Unhandled error event" line (got ${seen.length})`)
})
