// Regression (bug in @sluice/test-redis): startCluster({ replicas: 1 }) resolved while every
// replica still had master_link_status:down (the first sync waits repl-diskless-sync-delay, 5 s).
// A master killed in that window is never failed over: its replica never synced, so its data age
// is unbounded and it refuses to run for election. The cluster must be failover-ready on return.
import { startCluster } from '@sluice/test-redis'
import t from 'tap'

const cluster = await startCluster({ masters: 3, replicas: 1 })
t.teardown(() => cluster.stop())

t.test('every replica has synced with its master when startCluster resolves', async (t) => {
  const infos = await Promise.all(
    cluster.servers.map((s) => s.client({ maxRetriesPerRequest: 0 }).info('replication')),
  )
  const replicas = infos.filter((i) => i.includes('role:slave'))
  t.equal(replicas.length, 3, 'three replicas')
  const down = replicas.filter((i) => !i.includes('master_link_status:up')).length
  t.equal(down, 0, `${down} of 3 replicas not yet synced (master_link_status:down)`)
})
