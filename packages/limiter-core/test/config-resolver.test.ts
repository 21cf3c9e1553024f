import { startRedis, uniquePrefix } from '@sluice/test-redis'
import type { Redis } from 'ioredis'
import t, { type Test as Tap } from 'tap'
import {
  BUILT_IN_DEFAULT_CONFIG,
  type CacheResult,
  CONFIG_UPDATES_CHANNEL,
  ConfigRepository,
  type ConfigResolverOptions,
  configKey,
  createConfigResolver,
  DEFAULT_APP_ID,
  etagOf,
  parseConfig,
  type ResolvedConfig,
  serializeConfig,
} from '../src/config/index.js'

const redis = await startRedis()
t.teardown(() => redis.stop())
const admin = redis.client()
const repo = new ConfigRepository(admin)

const DEFAULT = parseConfig(
  { limits: [{ name: 'dflt', algorithm: 'fixed-window', limit: 100, windowMs: 60000 }], failMode: 'open' },
  'test',
)
const cfg = (limit: number) =>
  parseConfig({ limits: [{ name: 'own', algorithm: 'token-bucket', limit, windowMs: 1000 }] }, 'test')

/** Command calls on the server (INFO itself excluded), optionally only of some commands. */
async function calls(only?: string[]): Promise<number> {
  const info = await admin.info('commandstats')
  let n = 0
  for (const m of info.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) {
    const cmd = m[1] as string
    if (cmd === 'info') continue
    if (only === undefined || only.includes(cmd)) n += Number(m[2])
  }
  return n
}

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 3000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== false) return v
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}

interface Counted {
  cache: Record<CacheResult, number>
  reloads: string[]
  invalid: string[]
  updated: string[]
  errors: string[]
}

function make(tt: Tap, over: Partial<ConfigResolverOptions> = {}, client: Redis = redis.client()) {
  const counted: Counted = {
    cache: { hit: 0, miss: 0, stale: 0, invalid: 0 },
    reloads: [],
    invalid: [],
    updated: [],
    errors: [],
  }
  const r = createConfigResolver({
    client,
    defaultConfig: DEFAULT,
    defaultGuardIntervalMs: 60_000,
    hooks: {
      onCache: (res) => {
        counted.cache[res]++
      },
      onReload: (src, appId) => counted.reloads.push(`${src}:${appId}`),
      onInvalid: (appId, msg) => counted.invalid.push(`${appId}: ${msg}`),
      onUpdated: (appId, src) => counted.updated.push(`${appId}:${src}`),
      onError: (err, ctx) => counted.errors.push(`${ctx}: ${err.message}`),
    },
    ...over,
  })
  tt.teardown(() => r.close())
  return { r, counted }
}

t.beforeEach(async () => {
  await admin.set(configKey(DEFAULT_APP_ID), serializeConfig(DEFAULT))
})

t.test(
  'an app without a config falls back to the default, and that is cached (negative cache)',
  async (t) => {
    const { r, counted } = make(t)
    await r.start()
    const app = uniquePrefix('app')
    const first = await r.resolve(app)
    t.equal(first.source, 'default')
    t.equal(first.appId, app)
    t.same(first.config, DEFAULT)
    t.equal(first.etag, etagOf(serializeConfig(DEFAULT)))
    t.equal(counted.cache.miss, 1)
    const before = await calls(['get', 'mget'])
    const second = r.resolve(app)
    t.notOk(second instanceof Promise, 'served synchronously')
    t.equal(second, first, 'same object')
    t.equal(await calls(['get', 'mget']), before, 'no read for a known-absent app')
    t.equal(counted.cache.hit, 1)
    // The default itself.
    const d = await r.resolve(DEFAULT_APP_ID)
    t.equal(d.source, 'default')
    t.equal(d.policy, first.policy, 'apps on the default share its policy object')
  },
)

t.test('an app with its own config is served by it', async (t) => {
  const { r } = make(t)
  await r.start()
  const app = uniquePrefix('app')
  const put = await repo.put(app, cfg(7))
  const got = await r.resolve(app)
  t.equal(got.source, 'app')
  t.equal(got.etag, put.etag)
  t.equal(got.config.limits[0]?.limit, 7)
  t.equal(got.policy.limits[0]?.name, 'own')
  t.same((await repo.get(app))?.etag, put.etag)
})

t.test(
  'a hand-written config is picked up after the TTL; unchanged value keeps the same policy object',
  async (t) => {
    let clock = 1_000_000
    const { r, counted } = make(t, { now: () => clock, cacheTtlMs: 5000 })
    await r.start()
    const app = uniquePrefix('app')
    t.equal((await r.resolve(app)).source, 'default')
    await admin.set(configKey(app), serializeConfig(cfg(3)))
    clock += 4999
    const cached = r.resolve(app)
    t.notOk(cached instanceof Promise)
    t.equal((cached as ResolvedConfig).source, 'default', 'still cached within the TTL')
    clock += 2
    const fresh = await r.resolve(app)
    t.equal(fresh.source, 'app')
    t.equal(fresh.config.limits[0]?.limit, 3)
    t.ok(counted.reloads.includes(`ttl:${app}`))
    t.ok(counted.updated.includes(`${app}:app`), 'onUpdated: default -> app')
    clock += 6000
    const again = await r.resolve(app)
    t.equal(again.policy, fresh.policy, 'same etag -> same policy object')
    t.equal(again, fresh)
  },
)

t.test('invalidation by pub/sub across two resolvers on separate connections', async (t) => {
  const a = make(t, { cacheTtlMs: 60_000 })
  const b = make(t, { cacheTtlMs: 60_000 })
  await a.r.start()
  await b.r.start()
  const app = uniquePrefix('app')
  t.equal((await a.r.resolve(app)).source, 'default')
  t.equal((await b.r.resolve(app)).source, 'default')
  await new ConfigRepository(redis.client()).put(app, cfg(9))
  const seen = await until(() => {
    const v = b.r.resolve(app)
    return !(v instanceof Promise) && v.source === 'app' ? v : undefined
  })
  t.equal(seen.config.limits[0]?.limit, 9)
  t.ok(b.counted.reloads.includes(`pubsub:${app}`))
  t.ok(b.counted.updated.includes(`${app}:app`), 'onUpdated reported')
  // A default change reaches apps served by the default.
  const other = uniquePrefix('other')
  t.equal((await b.r.resolve(other)).config.limits[0]?.limit, 100)
  await repo.put(DEFAULT_APP_ID, {
    limits: [{ name: 'dflt', algorithm: 'fixed-window', limit: 55, windowMs: 60000 }],
  })
  await until(async () => (await b.r.resolve(other)).config.limits[0]?.limit === 55)
  // Delete: back to the default.
  await repo.delete(app)
  await until(async () => (await a.r.resolve(app)).source === 'default')
  t.equal((await a.r.resolve(app)).config.limits[0]?.limit, 55)
})

t.test('a subscriber reconnect marks every entry stale', async (t) => {
  const { r } = make(t, { cacheTtlMs: 600_000 })
  await r.start()
  const app = uniquePrefix('app')
  t.equal((await r.resolve(app)).source, 'default')
  await admin.set(configKey(app), serializeConfig(cfg(4))) // no PUBLISH: a lost message
  await new Promise((res) => setTimeout(res, 50))
  t.equal((await r.resolve(app)).source, 'default', 'not noticed without a message')
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  const v = await until(async () => {
    const x = await r.resolve(app)
    return x.source === 'app' ? x : undefined
  })
  t.equal(v.config.limits[0]?.limit, 4)
  // And the subscription works again afterwards.
  await repo.put(app, cfg(5))
  await until(async () => (await r.resolve(app)).config.limits[0]?.limit === 5)
})

t.test('invalid JSON and schema-invalid values are never applied; onInvalid once per value', async (t) => {
  const { r, counted } = make(t, { cacheTtlMs: 60_000 })
  await r.start()
  const app = uniquePrefix('app')
  await repo.put(app, cfg(6))
  const good = await r.resolve(app)
  t.equal(good.source, 'app')
  await admin.set(configKey(app), '{not json')
  await admin.publish(CONFIG_UPDATES_CHANNEL, app)
  await until(() => counted.invalid.length === 1)
  t.match(counted.invalid[0], new RegExp(`^${app}: appId=${app}: \\(root\\) is not valid JSON`))
  const still = await r.resolve(app)
  t.equal(still.config.limits[0]?.limit, 6, 'last good keeps serving')
  t.equal(still.policy, good.policy)
  await admin.publish(CONFIG_UPDATES_CHANNEL, app)
  await until(() => counted.cache.invalid >= 2)
  t.equal(counted.invalid.length, 1, 'same bad value reported once')
  await admin.set(
    configKey(app),
    JSON.stringify({ limits: [{ name: 'x', algorithm: 'fixed-window', limit: 0, windowMs: 1 }] }),
  )
  await admin.publish(CONFIG_UPDATES_CHANNEL, app)
  await until(() => counted.invalid.length === 2)
  t.match(counted.invalid[1], 'limits[0].limit must be >= 1')
  t.equal((await r.resolve(app)).config.limits[0]?.limit, 6)
  // No last good: the default serves.
  const fresh = uniquePrefix('bad')
  await admin.set(configKey(fresh), '[]')
  const v = await r.resolve(fresh)
  t.equal(v.source, 'default')
  t.equal(counted.invalid.length, 3)
  // An invalid default: the last good default (or the configured one) keeps serving.
  await admin.set(configKey(DEFAULT_APP_ID), 'nope')
  await admin.publish(CONFIG_UPDATES_CHANNEL, DEFAULT_APP_ID)
  await until(() => counted.invalid.length === 4)
  t.same((await r.resolve(fresh)).config, DEFAULT)
})

t.test('start() seeds the default with SET NX and never overwrites an edit', async (t) => {
  await admin.del(configKey(DEFAULT_APP_ID))
  const { r } = make(t)
  await r.start()
  t.equal(await admin.get(configKey(DEFAULT_APP_ID)), serializeConfig(DEFAULT))
  const edited = JSON.stringify({
    limits: [{ name: 'ed', algorithm: 'fixed-window', limit: 1, windowMs: 10 }],
  })
  await admin.set(configKey(DEFAULT_APP_ID), edited)
  const r2 = make(t).r
  await r2.start()
  t.equal(await admin.get(configKey(DEFAULT_APP_ID)), edited)
  t.equal((await r2.resolve(uniquePrefix('x'))).config.limits[0]?.name, 'ed')
  // ensureDefault reports whether it wrote.
  t.equal(await repo.ensureDefault(DEFAULT), false)
})

t.test('the default is re-seeded after DEL: on a read miss and by the guard timer', async (t) => {
  const { r } = make(t, { defaultGuardIntervalMs: 50, cacheTtlMs: 60_000 })
  await r.start()
  await admin.del(configKey(DEFAULT_APP_ID))
  await until(async () => (await admin.get(configKey(DEFAULT_APP_ID))) === serializeConfig(DEFAULT))
  t.pass('guard restored it')
  const { r: r2 } = make(t, { cacheTtlMs: 60_000 })
  await admin.del(configKey(DEFAULT_APP_ID))
  const v = await r2.resolve(uniquePrefix('y')) // not started: only the read-miss path
  t.same(v.config, DEFAULT)
  await until(async () => (await admin.get(configKey(DEFAULT_APP_ID))) === serializeConfig(DEFAULT))
  t.pass('read miss restored it')
})

t.test('the built-in default is used when none is given', async (t) => {
  await admin.del(configKey(DEFAULT_APP_ID))
  const r = createConfigResolver({ client: redis.client() })
  t.teardown(() => r.close())
  await r.start()
  t.equal(await admin.get(configKey(DEFAULT_APP_ID)), serializeConfig(BUILT_IN_DEFAULT_CONFIG))
  t.same((await r.resolve(uniquePrefix('z'))).config, BUILT_IN_DEFAULT_CONFIG)
})

t.test('single-flight: 50 concurrent misses are one read', async (t) => {
  const { r } = make(t)
  await r.start()
  const app = uniquePrefix('sf')
  await repo.put(app, cfg(11))
  const before = await calls(['get', 'mget'])
  const all = await Promise.all(Array.from({ length: 50 }, () => r.resolve(app)))
  t.equal(await calls(['get', 'mget']), before + 1, 'one MGET of app + default')
  t.ok(all.every((v) => v === all[0] && v.source === 'app'))
  // Default warm: 50 misses of another app are one GET.
  const app2 = uniquePrefix('sf2')
  const b2 = await calls(['get'])
  const all2 = await Promise.all(Array.from({ length: 50 }, () => r.resolve(app2)))
  t.equal(await calls(['get']), b2 + 1)
  t.ok(all2.every((v) => v.source === 'default'))
})

t.test('steady state: resolve on a warm cache issues no Redis command', async (t) => {
  const { r, counted } = make(t, { cacheTtlMs: 60_000 })
  await r.start()
  const apps = [uniquePrefix('w'), uniquePrefix('w'), DEFAULT_APP_ID]
  await repo.put(apps[0] as string, cfg(2))
  for (const a of apps) await r.resolve(a)
  // The PUBLISH of the put may arrive after the first read: wait until all three are warm.
  await until(async () => {
    for (const a of apps) if (r.resolve(a) instanceof Promise) await r.resolve(a)
    await new Promise((res) => setTimeout(res, 30))
    return apps.every((a) => !(r.resolve(a) instanceof Promise))
  })
  const before = await calls()
  const hits = counted.cache.hit
  for (let i = 0; i < 3000; i++) {
    const v = r.resolve(apps[i % 3] as string)
    if (v instanceof Promise) throw new Error('not synchronous')
  }
  t.equal(await calls(), before, 'no command at all')
  t.equal(counted.cache.hit, hits + 3000)
})

t.test('the cache is bounded (LRU)', async (t) => {
  const { r } = make(t, { maxEntries: 2, cacheTtlMs: 60_000 })
  const [a, b, c] = [uniquePrefix('l'), uniquePrefix('l'), uniquePrefix('l')]
  await r.resolve(a)
  await r.resolve(b)
  r.resolve(a) // a most recent
  await r.resolve(c) // evicts b
  t.notOk(r.resolve(a) instanceof Promise)
  t.notOk(r.resolve(c) instanceof Promise)
  t.ok(r.resolve(b) instanceof Promise, 'b was evicted')
})

t.test('invalidate() drops entries; invalid appIds never reach Redis', async (t) => {
  const { r } = make(t, { cacheTtlMs: 60_000 })
  const a = uniquePrefix('i')
  await r.resolve(a)
  t.notOk(r.resolve(a) instanceof Promise)
  r.invalidate(a)
  t.ok(r.resolve(a) instanceof Promise)
  await r.resolve(a)
  r.invalidate()
  t.ok(r.resolve(a) instanceof Promise)
  const before = await calls(['get', 'mget'])
  const bad = r.resolve('not valid!')
  t.notOk(bad instanceof Promise)
  t.equal((bad as ResolvedConfig).source, 'default')
  t.equal(await calls(['get', 'mget']), before)
})

t.test('list, get, delete in the repository', async (t) => {
  const app = uniquePrefix('lst')
  await repo.put(app, cfg(1))
  const ids = await repo.list()
  t.ok(ids.includes(app) && ids.includes(DEFAULT_APP_ID))
  t.equal(await repo.delete(app), true)
  t.equal(await repo.delete(app), false)
  t.equal(await repo.get(app), null)
  await t.rejects(repo.put('bad id', cfg(1)), { code: 'SLUICE_ERR_CONFIG_APP_ID' })
  await t.rejects(repo.put(app, { limits: [] }), {
    code: 'SLUICE_ERR_CONFIG_INVALID',
    message: /^appId=.*: limits/,
  })
})
