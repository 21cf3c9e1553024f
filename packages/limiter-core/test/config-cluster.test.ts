import { startCluster, uniquePrefix } from '@sluice/test-redis'
import type { Redis } from 'ioredis'
import t from 'tap'
import {
  ConfigRepository,
  configKey,
  createConfigResolver,
  DEFAULT_APP_ID,
  parseConfig,
  serializeConfig,
} from '../src/config/index.js'

const cluster = await startCluster({ masters: 3, replicas: 0 })
t.teardown(() => cluster.stop())
const admin = cluster.client()
const repo = new ConfigRepository(admin)

const DEFAULT = parseConfig(
  { limits: [{ name: 'd', algorithm: 'sliding-window', limit: 30, windowMs: 1000 }] },
  't',
)
const cfg = (limit: number) =>
  parseConfig({ limits: [{ name: 'o', algorithm: 'token-bucket', limit, windowMs: 1000 }] }, 't')

/** Command calls summed over every node (INFO excluded). */
async function calls(only?: string[]): Promise<number> {
  let n = 0
  for (const server of cluster.servers) {
    const c: Redis = server.client()
    const info = await c.info('commandstats')
    c.disconnect()
    for (const m of info.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) {
      const cmd = m[1] as string
      // Connection set-up and topology commands of the clients themselves (incl. the INFO probe).
      if (/^(info|cluster|ping|client|hello|command|select|readonly)/.test(cmd)) continue
      if (only === undefined || only.includes(cmd)) n += Number(m[2])
    }
  }
  return n
}

async function until(fn: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}

function make(tt: { teardown(fn: () => unknown): void }, ttl = 60_000) {
  const r = createConfigResolver({
    client: cluster.client(),
    defaultConfig: DEFAULT,
    cacheTtlMs: ttl,
    defaultGuardIntervalMs: 60_000,
    timeoutMs: 500,
  })
  tt.teardown(() => r.close())
  return r
}

t.test('cluster: default seeded, fallback, own config, pub/sub across resolvers', async (t) => {
  await admin.del(configKey(DEFAULT_APP_ID))
  const a = make(t)
  const b = make(t)
  await a.start()
  await b.start()
  t.equal(await admin.get(configKey(DEFAULT_APP_ID)), serializeConfig(DEFAULT))
  const app = uniquePrefix('c')
  t.equal((await a.resolve(app)).source, 'default')
  t.equal((await b.resolve(app)).source, 'default')
  await repo.put(app, cfg(12))
  await until(() => {
    const v = b.resolve(app)
    return !(v instanceof Promise) && v.source === 'app' && v.config.limits[0]?.limit === 12
  })
  await repo.put(DEFAULT_APP_ID, {
    limits: [{ name: 'd', algorithm: 'sliding-window', limit: 31, windowMs: 1000 }],
  })
  const other = uniquePrefix('o')
  await until(async () => (await a.resolve(other)).config.limits[0]?.limit === 31)
  await repo.delete(app)
  await until(async () => (await b.resolve(app)).source === 'default')
  const ids = await repo.list()
  t.ok(ids.includes(DEFAULT_APP_ID), 'list() scans every master')
  t.notOk(ids.includes(app))
  await repo.put(DEFAULT_APP_ID, DEFAULT)
})

t.test('cluster: single-flight and a silent warm cache', async (t) => {
  const r = make(t)
  await r.start()
  const app = uniquePrefix('sf')
  await repo.put(app, cfg(3))
  await new Promise((res) => setTimeout(res, 50))
  const before = await calls(['get'])
  const beforeMget = await calls(['mget'])
  const all = await Promise.all(Array.from({ length: 50 }, () => r.resolve(app)))
  t.ok(all.every((v) => v === all[0] && v.source === 'app'))
  // One GET of the app, plus one of the default unless the default is already cached (the start-up
  // seed may have cached it, depending on timing): never one read per concurrent miss.
  const gets = (await calls(['get'])) - before
  t.ok(gets >= 1 && gets <= 2, `50 concurrent misses: ${gets} GET(s), not 50`)
  t.equal(await calls(['mget']), beforeMget, 'no CROSSSLOT MGET on Cluster')
  const warm = await calls()
  for (let i = 0; i < 1000; i++) if (r.resolve(app) instanceof Promise) throw new Error('not synchronous')
  t.equal(await calls(), warm, 'no command on a warm cache')
})

t.test('cluster: a subscriber reconnect marks entries stale', async (t) => {
  const r = make(t, 600_000)
  await r.start()
  const app = uniquePrefix('rc')
  t.equal((await r.resolve(app)).source, 'default')
  await admin.set(configKey(app), serializeConfig(cfg(21))) // no PUBLISH
  await new Promise((res) => setTimeout(res, 50))
  t.equal((await r.resolve(app)).source, 'default')
  for (const server of cluster.servers) {
    const c = server.client()
    await c.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    c.disconnect()
  }
  await until(async () => (await r.resolve(app)).source === 'app')
  t.pass('re-read after the subscriber came back')
  await repo.put(app, cfg(22))
  await until(async () => (await r.resolve(app)).config.limits[0]?.limit === 22)
  t.pass('subscription works again')
})
