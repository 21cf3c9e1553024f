// Redis Cluster with replicas (3 masters, 3 replicas) under load:
// - a slot migration (CLUSTER SETSLOT IMPORTING/MIGRATING + MIGRATE + SETSLOT NODE) of the slot
//   holding the test subject, during load: ASK/MOVED/TRYAGAIN are followed and sliding-log stays exact;
// - SCRIPT FLUSH on every node during load: NOSCRIPT falls back to EVAL, no decision is lost;
// - kill the master holding the subject under load: no hang, fail mode holds during the failover,
//   then the limiter decides on the promoted replica (whose script cache is empty) again, exactly.
import { startCluster, uniquePrefix } from '@sluice/test-redis'
import type { Redis } from 'ioredis'
import t from 'tap'
import { eventually, putConfig, sleep } from '../src/configs.js'
import { startInProcess, type TimedResponse } from '../src/in-process.js'
import { sum } from '../src/metrics.js'

const TIMEOUT_MS = 500
const cluster = await startCluster({ masters: 3, replicas: 1 })
const nodeClients: Redis[] = cluster.servers.map((s) => s.client({ maxRetriesPerRequest: 0 }))
// startCluster returns before the replicas finish their first sync (repl-diskless-sync-delay 5 s);
// a replica that never synced refuses to fail over. See regression-cluster-replicas-synced.test.ts.
await eventually(
  'replicas synced',
  async () => {
    const infos = await Promise.all(nodeClients.map((c) => c.info('replication')))
    const replicas = infos.filter((i) => i.includes('role:slave'))
    return replicas.length === 3 && replicas.every((i) => i.includes('master_link_status:up'))
  },
  30_000,
  200,
)
const admin = cluster.client()
const p = uniquePrefix('cl')
const g = await startInProcess({
  REDIS_CLUSTER_NODES: cluster.seeds,
  REDIS_TIMEOUT_MS: String(TIMEOUT_MS),
  CONFIG_CACHE_TTL_MS: '1000',
})
t.teardown(async () => {
  await g.close()
  await cluster.stop()
})

interface SlotOwner {
  index: number
  id: string
}
async function nodeIds(): Promise<string[]> {
  return Promise.all(nodeClients.map(async (c) => String(await c.cluster('MYID'))))
}
/** The master owning `slot`, as seen by a live node. */
async function ownerOf(slot: number, via = 0): Promise<SlotOwner> {
  const slots = (await nodeClients[via]!.cluster('SLOTS')) as unknown as [
    number,
    number,
    [string, number, string],
  ][]
  const ids = await nodeIds().catch(() => [] as string[])
  for (const [start, end, master] of slots) {
    if (slot >= start && slot <= end) {
      const index = cluster.nodes.findIndex((n) => n.port === Number(master[1]))
      return { index, id: ids[index] ?? master[2] }
    }
  }
  throw new Error(`slot ${slot} has no owner`)
}
async function slotOf(appId: string): Promise<number> {
  return Number(await nodeClients[0]!.cluster('KEYSLOT', `rl:{${appId}}:x`))
}

/** Send `total` requests for `appId`, `concurrency` at a time; `during` runs once `atFraction` are done. */
async function load(
  appId: string,
  total: number,
  concurrency: number,
  during?: { atFraction: number; run: () => Promise<void> },
): Promise<TimedResponse[]> {
  const out: TimedResponse[] = []
  let fired: Promise<void> | undefined
  for (let n = 0; n < total; n += concurrency) {
    if (during && !fired && n >= total * during.atFraction) fired = during.run()
    out.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(concurrency, total - n) }, () => g.request(appId)),
      )),
    )
  }
  await fired
  return out
}
const tally = (rs: TimedResponse[]) => {
  const m: Record<number, number> = {}
  for (const r of rs) m[r.status] = (m[r.status] ?? 0) + 1
  return m
}

t.test('slot migration of the subject during load leaves sliding-log exact', async (t) => {
  const app = `${p}-mig`
  const LIMIT = 200
  await putConfig(admin, app, {
    limits: [{ name: 'exact', algorithm: 'sliding-log', limit: LIMIT, windowMs: 60_000 }],
    failMode: 'closed',
  })
  const slot = await slotOf(app)
  const src = await ownerOf(slot)
  const ids = await nodeIds()
  const masters = new Set<number>()
  const slots = (await nodeClients[0]!.cluster('SLOTS')) as unknown as [
    number,
    number,
    [string, number, string],
  ][]
  for (const [, , m] of slots) masters.add(cluster.nodes.findIndex((n) => n.port === Number(m[1])))
  const dstIndex = [...masters].find((i) => i !== src.index)!
  const dst = { index: dstIndex, id: ids[dstIndex]! }
  const srcC = nodeClients[src.index]!
  const dstC = nodeClients[dst.index]!
  let moved = 0
  const migrate = async () => {
    await dstC.cluster('SETSLOT', slot, 'IMPORTING', src.id)
    await srcC.cluster('SETSLOT', slot, 'MIGRATING', dst.id)
    // let requests run against the half-migrated slot (ASK / TRYAGAIN) for a moment
    await sleep(150)
    for (;;) {
      const keys = (await srcC.cluster('GETKEYSINSLOT', slot, 100)) as string[]
      if (keys.length === 0) break
      moved += keys.length
      await srcC.migrate('127.0.0.1', cluster.nodes[dst.index]!.port, '', 0, 5000, 'REPLACE', 'KEYS', ...keys)
    }
    for (const i of masters) await nodeClients[i]!.cluster('SETSLOT', slot, 'NODE', dst.id)
  }
  const rs = await load(app, LIMIT * 3, 20, { atFraction: 0.3, run: migrate })
  const counts = tally(rs)
  t.comment(
    `slot ${slot}: node ${src.index} -> ${dst.index}, ${moved} keys moved; statuses ${JSON.stringify(counts)}`,
  )
  t.ok(moved >= 1, 'the subject keys were migrated mid-load')
  t.equal((await ownerOf(slot)).index, dst.index, 'the slot now lives on the target')
  t.equal(counts[200] ?? 0, LIMIT, `admitted ${counts[200] ?? 0} = limit ${LIMIT}`)
  t.equal((counts[200] ?? 0) + (counts[429] ?? 0) + (counts[503] ?? 0), rs.length, 'only 200 / 429 / 503')
  t.ok((counts[503] ?? 0) <= 20, `few fail-closed answers during the migration (${counts[503] ?? 0})`)
  const worst = Math.max(...rs.map((r) => r.ms))
  t.ok(worst < TIMEOUT_MS * 2 + 3_000, `no hang: worst ${worst.toFixed(0)} ms`)
  // after the migration the limiter keeps deciding (MOVED followed): still blocked, exactly
  const after = await load(app, 20, 10)
  t.same(tally(after), { 429: 20 }, 'after the migration: the same window, still full')
})

t.test('SCRIPT FLUSH on every node during load: NOSCRIPT falls back to EVAL', async (t) => {
  const app = `${p}-noscript`
  const LIMIT = 100
  await putConfig(admin, app, {
    limits: [{ name: 'exact', algorithm: 'sliding-log', limit: LIMIT, windowMs: 60_000 }],
    failMode: 'closed',
  })
  const before = await g.metrics()
  const rs = await load(app, LIMIT * 2, 10, {
    atFraction: 0.25,
    run: async () => {
      await Promise.all(nodeClients.map((c) => c.script('FLUSH').catch(() => {})))
    },
  })
  const counts = tally(rs)
  t.same(counts, { 200: LIMIT, 429: LIMIT }, `exact through NOSCRIPT: ${JSON.stringify(counts)}`)
  const m = await g.metrics()
  t.equal(
    sum(m, 'sluice_store_errors_total', { kind: 'script' }) -
      sum(before, 'sluice_store_errors_total', { kind: 'script' }),
    0,
    'NOSCRIPT is not a store error',
  )
})

t.test('kill the master of the subject under load: failover, then exact again', async (t) => {
  const app = `${p}-fo`
  await putConfig(admin, app, {
    limits: [{ name: 'big', algorithm: 'fixed-window', limit: 1_000_000, windowMs: 3_600_000 }],
    failMode: 'closed',
  })
  await eventually('config loaded', async () => (await g.request(app)).json().configSource === 'app', 10_000)
  const slot = await slotOf(app)
  const victim = await ownerOf(slot)
  const survivor = cluster.nodes.findIndex((_, i) => i !== victim.index)
  const rs: TimedResponse[] = []
  let stop = false
  const loop = (async () => {
    while (!stop) rs.push(...(await Promise.all(Array.from({ length: 10 }, () => g.request(app)))))
  })()
  await sleep(300)
  const killedAt = Date.now()
  await cluster.servers[victim.index]!.kill()
  // failover: the replica is promoted (cluster-node-timeout 2000 ms), the limiter decides again
  let recoveredMs = -1
  try {
    recoveredMs = await eventually(
      'deciding on the promoted replica',
      async () => {
        const r = await g.request(app)
        return r.status === 200 && r.json().outcome === 'allowed'
      },
      30_000,
      100,
    )
  } catch (err) {
    const r = await g.request(app)
    t.comment(`last answer: ${r.status} ${r.body}`)
    t.comment(String(await nodeClients[survivor]!.cluster('NODES')))
    t.comment(JSON.stringify(g.logs.filter((l) => String(l.event ?? '').includes('store')).slice(-3)))
    throw err
  } finally {
    stop = true
    await loop
  }
  const newOwner = await ownerOf(slot, survivor)
  t.not(newOwner.index, victim.index, `slot ${slot} moved from node ${victim.index} to ${newOwner.index}`)
  t.comment(`killed at +0, deciding again after ${Date.now() - killedAt} ms (${recoveredMs} ms polling)`)
  const counts = tally(rs)
  t.comment(`statuses under load across the failover: ${JSON.stringify(counts)}`)
  t.equal((counts[200] ?? 0) + (counts[503] ?? 0), rs.length, 'only 200 (decided) or 503 (fail closed)')
  t.ok(
    rs.filter((r) => r.status === 503).every((r) => r.headers['retry-after'] === '1'),
    '503s carry Retry-After: 1',
  )
  const worst = Math.max(...rs.map((r) => r.ms))
  t.ok(worst < TIMEOUT_MS * 2 + 3_000, `no hang during the failover: worst ${worst.toFixed(0)} ms`)

  // exact again on the promoted replica (its script cache is empty: NOSCRIPT -> EVAL)
  const exact = `${p}-after`
  await putConfig(admin, exact, {
    limits: [{ name: 'exact', algorithm: 'sliding-log', limit: 30, windowMs: 60_000 }],
    failMode: 'closed',
  })
  const after = await load(exact, 60, 10)
  t.same(tally(after), { 200: 30, 429: 30 }, 'sliding-log exact after the failover')
})
