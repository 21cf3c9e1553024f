import { startCluster, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { ConfigAdmin, historyKey } from '../src/admin/index.js'
import { configKey } from '../src/config/index.js'

const cluster = await startCluster({ masters: 3, replicas: 0 })
t.teardown(() => cluster.stop())
const client = cluster.client()

const cfg = (limit: number) => ({
  limits: [{ name: 'l', algorithm: 'sliding-window', limit, windowMs: 1000 }],
})

t.test('CAS and history on Redis Cluster (same slot, no CROSSSLOT)', async (t) => {
  const admin = new ConfigAdmin(client, { auditKey: `sluice:audit:${uniquePrefix('c')}` })
  const appIds = Array.from({ length: 12 }, (_, i) => uniquePrefix(`app${i}`))
  for (const appId of appIds) {
    const a = (await client.call('CLUSTER', 'KEYSLOT', configKey(appId))) as number
    const b = (await client.call('CLUSTER', 'KEYSLOT', historyKey(appId))) as number
    t.equal(a, b, `${appId}: history key in the config key's slot`)
    const r1 = await admin.put(appId, cfg(1), { actor: 'a' })
    if (!r1.ok) throw new Error('put failed')
    t.match(await admin.put(appId, cfg(2), { actor: 'a', ifMatch: ['"stale"'] }), {
      ok: false,
      reason: 'precondition',
    })
    t.match(await admin.put(appId, cfg(2), { actor: 'a', ifMatch: [r1.etag] }), { ok: true, version: 2 })
    t.match(await admin.rollback(appId, 1, { actor: 'a' }), { ok: true, version: 3, etag: r1.etag })
  }
  const slots = new Set(
    await Promise.all(
      appIds.map(async (a) => (await client.call('CLUSTER', 'KEYSLOT', configKey(a))) as number),
    ),
  )
  t.ok(slots.size > 1, 'appIds spread over slots')
  const listed = await admin.list()
  t.ok(
    appIds.every((a) => listed.includes(a)),
    'list finds configs on every master',
  )
  t.match(await admin.delete(appIds[0] ?? '', { actor: 'a' }), { ok: true, deleted: true })
  t.equal((await admin.audit({ limit: 100 })).entries.length, 12 * 3 + 1)
})
