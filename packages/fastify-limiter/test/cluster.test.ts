import { startCluster, uniquePrefix, waitReady } from '@sluice/test-redis'
import { parseList } from 'structured-headers'
import t from 'tap'
import { buildApp, cfg, metricValue, putConfig } from './helpers.js'

const cluster = await startCluster({ masters: 3, replicas: 0 })
t.teardown(() => cluster.stop())
const clusterOpts = { enableOfflineQueue: false, redisOptions: { commandTimeout: 5000 } }

t.test('Redis Cluster: multi-limit decisions, headers, exact budget across two instances', async (t) => {
  const c1 = cluster.client(clusterOpts)
  const c2 = cluster.client(clusterOpts)
  await Promise.all([waitReady(c1), waitReady(c2)])
  const appIds = [uniquePrefix('c-a'), uniquePrefix('c-b'), uniquePrefix('c-c')]
  for (const id of appIds) {
    await putConfig(c1, id, {
      limits: [
        { name: 'burst', algorithm: 'token-bucket', limit: 40, windowMs: 60_000 },
        { name: 'minute', algorithm: 'sliding-log', limit: 25, windowMs: 60_000 },
        { name: 'hour', algorithm: 'fixed-window', limit: 1000, windowMs: 3_600_000 },
      ],
      failMode: 'closed',
      shadow: false,
    })
  }
  const a = await buildApp({ redis: c1, timeoutMs: 5000 }, 'warn')
  const b = await buildApp({ redis: c2, timeoutMs: 5000 }, 'warn')
  t.teardown(() => Promise.all([a.app.close(), b.app.close()]))
  for (const id of appIds) {
    await a.app.sluice.resolver.resolve(id)
    await b.app.sluice.resolver.resolve(id)
  }
  const reqs = []
  for (let i = 0; i < 150; i++) {
    const id = appIds[i % 3]!
    reqs.push((i % 2 === 0 ? a : b).app.inject({ url: '/', headers: { 'x-app-id': id } }))
  }
  const res = await Promise.all(reqs)
  t.notOk(
    res.some((r) => r.statusCode !== 200 && r.statusCode !== 429),
    'no store failure',
  )
  for (let k = 0; k < 3; k++) {
    const mine = res.filter((_, i) => i % 3 === k)
    t.equal(mine.filter((r) => r.statusCode === 200).length, 25, `${appIds[k]}: exactly the tightest budget`)
    const blocked = mine.find((r) => r.statusCode === 429)!
    t.equal(blocked.json().limit, 'minute')
  }
  const ok = res.find((r) => r.statusCode === 200)!
  const names = parseList(String(ok.headers['ratelimit-policy'])).map((i) => i[0])
  t.same(names, ['burst', 'minute', 'hour'])
  t.equal(parseList(String(ok.headers['ratelimit'])).length, 3)
  const allowed =
    (await metricValue(a.registry, 'sluice_decisions_total', { decision: 'allowed' })) +
    (await metricValue(b.registry, 'sluice_decisions_total', { decision: 'allowed' }))
  t.equal(allowed, 75)
  // Anonymous subjects work in the cluster too (ip:<address> hash tag).
  const anon = await a.app.inject({ url: '/', remoteAddress: '10.44.0.1' })
  t.equal(anon.statusCode, 200)
})

t.test('Redis Cluster: config update via pub/sub reaches the plugin', async (t) => {
  const c = cluster.client(clusterOpts)
  await waitReady(c)
  const id = uniquePrefix('c-upd')
  await putConfig(c, id, cfg(3, 60_000))
  const { app } = await buildApp({ redis: c, timeoutMs: 5000 }, 'warn')
  t.teardown(() => app.close())
  const h = { 'x-app-id': id }
  t.equal((await app.inject({ url: '/', headers: h })).headers['x-ratelimit-limit'], '3')
  await putConfig(c, id, cfg(9, 60_000))
  let limit = '3'
  const deadline = Date.now() + 6000
  while (limit !== '9' && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50))
    limit = String((await app.inject({ url: '/', headers: h })).headers['x-ratelimit-limit'])
  }
  t.equal(limit, '9')
})
