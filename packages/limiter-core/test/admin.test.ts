import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { ConfigAdmin } from '../src/admin/config-admin.js'
import { encodePrecondition, historyKey, isAuditCursor } from '../src/admin/index.js'
import {
  CONFIG_UPDATES_CHANNEL,
  configKey,
  etagOf,
  parseConfig,
  serializeConfig,
} from '../src/config/index.js'
import { CONFIG_DELETE_SCRIPT, CONFIG_PUT_SCRIPT } from '../src/generated/scripts.js'

const redis = await startRedis()
t.teardown(() => redis.stop())
const client = redis.client()

const cfg = (limit: number) => ({
  limits: [{ name: 'per-second', algorithm: 'fixed-window', limit, windowMs: 1000 }],
})
const rawOf = (limit: number) => serializeConfig(parseConfig(cfg(limit), 'test'))

function setup(name: string, historyLength?: number) {
  const appId = uniquePrefix(name)
  const auditKey = `sluice:audit:${appId}`
  const admin = new ConfigAdmin(client, {
    auditKey,
    ...(historyLength === undefined ? {} : { historyLength }),
  })
  return { appId, admin, auditKey }
}

t.test('script hashes are the SHA1 Redis computes', async (t) => {
  t.equal(await client.script('LOAD', CONFIG_PUT_SCRIPT.source), CONFIG_PUT_SCRIPT.sha1)
  t.equal(await client.script('LOAD', CONFIG_DELETE_SCRIPT.source), CONFIG_DELETE_SCRIPT.sha1)
})

t.test('history key embeds the config key as hash tag', async (t) => {
  t.equal(historyKey('my.app:1'), 'sluice:history:{rateLimitConfig:my.app:1}')
})

t.test('put stores canonical JSON, returns its ETag, appends history, publishes', async (t) => {
  const { appId, admin } = setup('put')
  const sub = redis.client()
  t.teardown(() => sub.quit())
  const messages: string[] = []
  sub.on('message', (_ch: string, msg: string) => messages.push(msg))
  await sub.subscribe(CONFIG_UPDATES_CHANNEL)
  const r = await admin.put(appId, cfg(5), { actor: 'alice' })
  if (!r.ok) throw new Error('put failed')
  t.equal(r.raw, rawOf(5))
  t.equal(r.etag, etagOf(rawOf(5)), 'Lua ETag equals etagOf()')
  t.equal(r.oldEtag, null)
  t.equal(r.version, 1)
  t.equal(await client.get(configKey(appId)), rawOf(5))
  const got = await admin.get(appId)
  t.equal(got?.etag, r.etag)
  t.same(got?.config, parseConfig(cfg(5), 't'))
  const h = await admin.history(appId)
  t.equal(h.length, 1)
  t.match(h[0], { version: 1, etag: r.etag, by: 'alice', action: 'put', from: null, raw: rawOf(5) })
  t.ok(Math.abs((h[0]?.at ?? 0) - Date.now()) < 60_000, 'history time is Redis time (close to now)')
  const deadline = Date.now() + 5000
  while (!messages.includes(appId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.ok(messages.includes(appId), 'appId published on rateLimitConfig:updates')
})

t.test('invalid config leaves Redis unchanged', async (t) => {
  const { appId, admin } = setup('invalid')
  const r = await admin.put(
    appId,
    { limits: [{ name: 'x', algorithm: 'fixed-window', limit: 0, windowMs: 1000 }], extra: 1 },
    { actor: 'a' },
  )
  t.equal(r.ok, false)
  if (!r.ok && r.reason === 'invalid') {
    t.ok(r.issues.some((i) => i.path === 'limits[0].limit'))
    t.ok(r.issues.some((i) => i.path === 'extra'))
  } else t.fail('expected invalid')
  t.equal(await client.exists(configKey(appId), historyKey(appId)), 0)
})

t.test('preconditions', async (t) => {
  const { appId, admin } = setup('cas')
  let r = await admin.put(appId, cfg(1), { actor: 'a', ifMatch: '*' })
  t.match(r, { ok: false, reason: 'precondition', currentEtag: null }, 'If-Match: * on a missing config')
  r = await admin.put(appId, cfg(1), { actor: 'a', ifMatch: ['"abc"'] })
  t.match(r, { ok: false, reason: 'precondition' }, 'If-Match on a missing config')
  const first = await admin.put(appId, cfg(1), { actor: 'a', ifNoneMatch: '*' })
  t.equal(first.ok, true, 'If-None-Match: * creates')
  if (!first.ok) return
  r = await admin.put(appId, cfg(2), { actor: 'a', ifNoneMatch: '*' })
  t.match(r, { ok: false, reason: 'precondition', currentEtag: first.etag })
  r = await admin.put(appId, cfg(2), { actor: 'a', ifMatch: ['"nope"', `W/${first.etag}`] })
  t.match(r, { ok: false, reason: 'precondition', currentEtag: first.etag }, 'weak ETags never match')
  t.equal(await client.get(configKey(appId)), rawOf(1), 'unchanged after failed preconditions')
  r = await admin.put(appId, cfg(2), { actor: 'a', ifMatch: ['"nope"', first.etag] })
  t.match(r, { ok: true, oldEtag: first.etag, version: 2 })
  r = await admin.put(appId, cfg(3), { actor: 'a', ifMatch: '*' })
  t.match(r, { ok: true, version: 3 })
})

t.test('encodePrecondition', async (t) => {
  t.equal(encodePrecondition({}, true), '')
  t.equal(encodePrecondition({ ifMatch: '*' }, true), '*')
  t.equal(encodePrecondition({ ifNoneMatch: '*' }, true), '!')
  t.equal(encodePrecondition({ ifNoneMatch: '*' }, false), '')
  t.equal(encodePrecondition({ ifMatch: ['W/"a"', 'b'] }, true), '""')
  t.equal(encodePrecondition({ ifMatch: ['"a"', '"b"'] }, true), '"a","b"')
})

t.test('10 concurrent puts with the same If-Match: exactly one wins', async (t) => {
  const { appId, admin } = setup('race')
  const first = await admin.put(appId, cfg(1), { actor: 'a' })
  if (!first.ok) throw new Error('setup failed')
  const clients = Array.from({ length: 10 }, () => redis.client())
  t.teardown(() => Promise.all(clients.map((c) => c.quit())))
  const results = await Promise.all(
    clients.map((c, i) =>
      new ConfigAdmin(c, { auditKey: `sluice:audit:${appId}` }).put(appId, cfg(10 + i), {
        actor: `w${i}`,
        ifMatch: [first.etag],
      }),
    ),
  )
  t.equal(results.filter((r) => r.ok).length, 1)
  t.equal(results.filter((r) => !r.ok && r.reason === 'precondition').length, 9)
  t.equal((await admin.history(appId)).length, 2)
})

t.test('history keeps the last N versions; rollback restores one through the CAS', async (t) => {
  const { appId, admin } = setup('hist', 5)
  for (let i = 1; i <= 7; i++) await admin.put(appId, cfg(i), { actor: 'a' })
  const h = await admin.history(appId)
  t.same(
    h.map((e) => e.version),
    [7, 6, 5, 4, 3],
  )
  t.match(await admin.rollback(appId, 1, { actor: 'a' }), { ok: false, reason: 'version_not_found' })
  const cur = await admin.get(appId)
  t.match(await admin.rollback(appId, 4, { actor: 'b', ifMatch: ['"stale"'] }), {
    ok: false,
    reason: 'precondition',
  })
  const r = await admin.rollback(appId, 4, { actor: 'b', ifMatch: [cur?.etag ?? ''] })
  t.match(r, { ok: true, version: 8, etag: etagOf(rawOf(4)) })
  t.equal(await client.get(configKey(appId)), rawOf(4))
  t.match((await admin.history(appId))[0], { version: 8, action: 'rollback', from: 4, by: 'b' })
})

t.test('rollback of a version that no longer validates is refused', async (t) => {
  const { appId, admin } = setup('rbinvalid')
  await admin.put(appId, cfg(1), { actor: 'a' })
  await client.lpush(
    historyKey(appId),
    JSON.stringify({ v: 2, etag: '"x"', config: '{"limits":[]}', at: 1, by: 'x', action: 'put' }),
  )
  t.match(await admin.rollback(appId, 2, { actor: 'a' }), { ok: false, reason: 'invalid' })
  t.equal(await client.get(configKey(appId)), rawOf(1))
})

t.test('delete', async (t) => {
  const { appId, admin, auditKey } = setup('del')
  t.match(await admin.delete('default', { actor: 'a' }), { ok: false, reason: 'default' })
  t.match(await admin.delete(appId, { actor: 'a' }), { ok: true, deleted: false })
  t.match(await admin.delete(appId, { actor: 'a', ifMatch: '*' }), { ok: false, reason: 'precondition' })
  const p = await admin.put(appId, cfg(1), { actor: 'a' })
  if (!p.ok) throw new Error('setup')
  t.match(await admin.delete(appId, { actor: 'a', ifMatch: ['"other"'] }), {
    ok: false,
    reason: 'precondition',
    currentEtag: p.etag,
  })
  t.match(await admin.delete(appId, { actor: 'd', ifMatch: [p.etag] }), {
    ok: true,
    deleted: true,
    oldEtag: p.etag,
  })
  t.equal(await client.exists(configKey(appId)), 0)
  t.equal((await admin.history(appId)).length, 1, 'history kept after delete')
  t.match(
    await admin.rollback(appId, 1, { actor: 'a' }),
    { ok: true, version: 2 },
    'a deleted config can be rolled back',
  )
  const page = await admin.audit()
  t.same(
    page.entries.map((e) => e.action),
    ['rollback', 'delete', 'put'],
  )
  t.match(page.entries[1], { sub: 'd', appId, oldEtag: p.etag, newEtag: null, version: null })
  t.equal(await client.xlen(auditKey), 3)
})

t.test('audit pages with a cursor and filters by appId', async (t) => {
  const { appId, admin } = setup('audit')
  const other = `${appId}-other`
  for (let i = 1; i <= 5; i++) {
    await admin.put(appId, cfg(i), { actor: 'a' })
    await admin.put(other, cfg(i), { actor: 'b' })
  }
  const p1 = await admin.audit({ limit: 4 })
  t.equal(p1.entries.length, 4)
  t.ok(p1.nextCursor !== null && isAuditCursor(p1.nextCursor))
  const p2 = await admin.audit({ limit: 4, cursor: p1.nextCursor ?? '' })
  const p3 = await admin.audit({ limit: 4, cursor: p2.nextCursor ?? '' })
  t.equal(p2.entries.length, 4)
  t.equal(p3.entries.length, 2)
  t.equal(p3.nextCursor, null)
  const ids = [...p1.entries, ...p2.entries, ...p3.entries].map((e) => e.id)
  t.equal(new Set(ids).size, 10, 'no entry twice')
  const mine = await admin.audit({ limit: 3, appIds: new Set([appId]) })
  t.equal(mine.entries.length, 3)
  t.ok(mine.entries.every((e) => e.appId === appId))
  t.same(
    mine.entries.map((e) => e.version),
    [5, 4, 3],
  )
  await t.rejects(admin.audit({ cursor: 'bad' }), { code: 'SLUICE_ERR_STORE_OPTIONS' })
})

t.test('audit failure does not undo the change and is reported', async (t) => {
  const appId = uniquePrefix('auditfail')
  const errors: string[] = []
  const auditKey = `sluice:audit:${appId}`
  await client.set(auditKey, 'not a stream')
  const admin = new ConfigAdmin(client, { auditKey, onAuditError: (e) => errors.push(e.message) })
  const r = await admin.put(appId, cfg(1), { actor: 'a' })
  t.match(r, { ok: true, audited: false })
  t.equal(errors.length, 1)
  t.equal(await client.get(configKey(appId)), rawOf(1))
})
