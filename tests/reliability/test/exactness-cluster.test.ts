// Exactness under load on a Redis Cluster: 3 gateway processes (built output) on a 3-master
// cluster, concurrent clients over apps whose subjects land on different masters. Exact
// algorithms admit exactly `limit` per app (CI: 300 concurrent over 8 apps; full: 1500 over 40).
import { startCluster, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { type ConfigLimit, putConfig } from '../src/configs.js'
import { type GatewayProcess, startGateway } from '../src/gateway-process.js'
import { count, type LoadResult, runLoad } from '../src/load.js'

const FULL = process.env.SLUICE_RELIABILITY_FULL === '1'
const CLIENTS = FULL ? 1500 : 300
const APPS = FULL ? 40 : 8
const LIMIT = 40
const PER_APP = LIMIT * 3
const HOUR = 3_600_000
const algorithms: ConfigLimit['algorithm'][] = [
  'sliding-log',
  'token-bucket',
  'fixed-window',
  'sliding-window',
]

const cluster = await startCluster({ masters: 3 })
const admin = cluster.client()
const p = uniquePrefix('exactc')
const apps = Array.from({ length: APPS }, (_, i) => ({ id: `${p}-${i}`, algorithm: algorithms[i % 4]! }))
for (const a of apps) {
  await putConfig(admin, a.id, {
    limits: [
      {
        name: 'main',
        algorithm: a.algorithm,
        limit: LIMIT,
        windowMs: a.algorithm === 'sliding-log' ? 60_000 : HOUR,
      },
    ],
    failMode: 'closed',
  })
}
const gateways: GatewayProcess[] = []
t.teardown(async () => {
  await Promise.all(gateways.map((g) => g.stop()))
  await cluster.stop()
})
for (let i = 0; i < 3; i++) {
  gateways.push(
    await startGateway({
      env: { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_TIMEOUT_MS: '2000', LOG_LEVEL: 'warn' },
    }),
  )
}

t.test(`${CLIENTS} concurrent clients over ${APPS} apps, 3 gateways, Redis Cluster`, async (t) => {
  const slots = new Set(
    await Promise.all(apps.map(async (a) => Number(await admin.cluster('KEYSLOT', `rl:{${a.id}}:x`)))),
  )
  t.ok(slots.size > 1, `subjects spread over ${slots.size} slots`)
  const t0 = Date.now()
  const total = APPS * PER_APP
  const results: LoadResult[] = await Promise.all(
    gateways.map((g, gi) => {
      const appOf = (i: number) => apps[(3 * i + gi) % APPS]!.id
      return runLoad({
        origin: g.origin,
        concurrency: Math.ceil(CLIENTS / 3),
        total: total / 3,
        request: (i) => ({ path: '/work', headers: { 'x-app-id': appOf(i) } }),
        keyOf: appOf,
        timeoutMs: 30_000,
      })
    }),
  )
  const t1 = Date.now()
  t.equal(
    results.reduce((n, r) => n + r.errors, 0),
    0,
    'no transport errors',
  )
  for (const a of apps) {
    let admitted = 0
    let blocked = 0
    for (const r of results) {
      admitted += count(r.byKey.get(a.id), 200)
      blocked += count(r.byKey.get(a.id), 429)
    }
    t.equal(admitted + blocked, PER_APP, `${a.id}: only 200 and 429`)
    const windowed = a.algorithm === 'fixed-window' || a.algorithm === 'sliding-window'
    if (windowed && Math.floor(t0 / HOUR) !== Math.floor(t1 / HOUR)) {
      t.ok(admitted <= 2 * LIMIT, `${a.algorithm}: crossed a window boundary, ${admitted} <= 2x limit`)
    } else {
      t.equal(admitted, LIMIT, `${a.algorithm} ${a.id}: admitted ${admitted} = limit ${LIMIT}`)
    }
  }
  t.comment(
    `cluster run took ${t1 - t0} ms; worst latency ${Math.max(...results.map((r) => r.maxLatencyMs)).toFixed(0)} ms`,
  )
})
