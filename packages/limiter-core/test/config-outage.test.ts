import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import {
  ConfigRepository,
  configKey,
  createConfigResolver,
  DEFAULT_APP_ID,
  parseConfig,
  serializeConfig,
} from '../src/config/index.js'

const redis = await startRedis({ own: true })
t.teardown(() => redis.stop())

const DEFAULT = parseConfig(
  { limits: [{ name: 'd', algorithm: 'sliding-window', limit: 50, windowMs: 1000 }] },
  't',
)
const OWN = parseConfig({ limits: [{ name: 'o', algorithm: 'fixed-window', limit: 8, windowMs: 1000 }] }, 't')

async function until(fn: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

t.test(
  'Redis paused: the last good config keeps serving, bounded by timeoutMs, never throwing',
  async (t) => {
    let clock = 0
    const stale: string[] = []
    const errors: string[] = []
    const client = redis.client({ maxRetriesPerRequest: 1 })
    const r = createConfigResolver({
      client,
      defaultConfig: DEFAULT,
      timeoutMs: 100,
      cacheTtlMs: 1000,
      defaultGuardIntervalMs: 60_000,
      now: () => clock,
      hooks: {
        onCache: (res, appId) => res === 'stale' && stale.push(appId),
        onError: (err) => errors.push(err.message),
      },
    })
    t.teardown(() => r.close())
    await r.start()
    const app = uniquePrefix('p')
    await new ConfigRepository(client).put(app, OWN)
    t.equal((await r.resolve(app)).source, 'app')
    // Let the PUBLISH of the put (and the reload it triggers) settle before the pause.
    await new Promise((res) => setTimeout(res, 150))
    t.equal((await r.resolve(app)).source, 'app')
    const never = uniquePrefix('never')
    await redis.pause()
    try {
      clock += 2000
      const started = Date.now()
      const v = await r.resolve(app)
      const took = Date.now() - started
      t.equal(v.source, 'app', 'last good')
      t.same(v.config, OWN)
      t.ok(took < 1000, `bounded (${took} ms)`)
      t.ok(stale.includes(app), 'counted stale')
      t.match(errors.join('\n'), /did not answer within 100 ms/)
      // During the back-off the stale value is served synchronously.
      t.notOk(r.resolve(app) instanceof Promise)
      // No last good at all: the configured default.
      const s2 = Date.now()
      const d = await r.resolve(never)
      t.ok(Date.now() - s2 < 1000)
      t.equal(d.source, 'default')
      t.same(d.config, DEFAULT)
    } finally {
      await redis.resume()
    }
    clock += 5000
    await until(async () => (await r.resolve(app)).source === 'app')
    t.pass('recovers after resume')
  },
)

t.test('Redis restarts empty: the default is re-seeded', async (t) => {
  const client = redis.client()
  const r = createConfigResolver({
    client,
    defaultConfig: DEFAULT,
    defaultGuardIntervalMs: 100,
    timeoutMs: 200,
  })
  t.teardown(() => r.close())
  await r.start()
  t.equal(await client.get(configKey(DEFAULT_APP_ID)), serializeConfig(DEFAULT))
  await redis.restart()
  const check = redis.client()
  await until(async () => (await check.get(configKey(DEFAULT_APP_ID))) === serializeConfig(DEFAULT))
  t.pass('re-seeded')
  t.same((await r.resolve(uniquePrefix('q'))).config, DEFAULT)
})
