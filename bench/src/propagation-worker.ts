/**
 * One process of the config-propagation measurement (forked by extras.ts).
 * `node propagation-worker.js <redisUrl> <appId>`: resolves `appId` every millisecond through a
 * config resolver (cache TTL 60 s, so only pub/sub invalidation can make it see a change quickly) and
 * sends `{ type: 'seen', etag, at }` (Date.now()) the first time each new ETag is served.
 */
import { createConfigResolver } from '@sluice/limiter-core'
import { Redis } from 'ioredis'

const [url, appId] = process.argv.slice(2)
if (url === undefined || appId === undefined)
  throw new Error('usage: propagation-worker.js <redisUrl> <appId>')
const client = new Redis(url, { maxRetriesPerRequest: 1 })
const resolver = createConfigResolver({ client, cacheTtlMs: 60_000 })
await resolver.start()
let last = ''
let busy = false
const timer = setInterval(() => {
  if (busy) return
  busy = true
  Promise.resolve(resolver.resolve(appId))
    .then((r) => {
      if (r.etag !== last) {
        last = r.etag
        process.send?.({ type: 'seen', etag: r.etag, at: Date.now() })
      }
    })
    .catch(() => undefined)
    .finally(() => {
      busy = false
    })
}, 1)
process.on('message', (msg: { type: string }) => {
  if (msg.type === 'exit') {
    clearInterval(timer)
    void resolver
      .close()
      .then(() => client.quit())
      .finally(() => process.exit(0))
  }
})
process.send?.({ type: 'ready' })
