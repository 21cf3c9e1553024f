import SwaggerParser from '@apidevtools/swagger-parser'
import { configKey, createConfigResolver, etagOf, historyKey } from '@sluice/limiter-core'
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import t from 'tap'
import { auth, buildApp, token } from './helpers.js'

const redis = await startRedis()
t.teardown(() => redis.stop())
const client = redis.client()
const app = await buildApp({ redis: client })
t.teardown(() => app.close())

const RW = await token({ sub: 'alice', scope: 'ratelimit:read ratelimit:write' })
const RO = await token({ sub: 'bob', scope: 'ratelimit:read' })
const cfg = (limit: number) => ({
  limits: [{ name: 'per-second', algorithm: 'sliding-log', limit, windowMs: 1000 }],
})
const stored = (limit: number) => ({ ...cfg(limit), failMode: 'local', shadow: false })
const put = (appId: string, body: unknown, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'PUT',
    url: `/admin/v1/configs/${appId}`,
    headers: { ...auth(RW), ...headers },
    payload: body as object,
  })

t.test('PUT, GET, list, effective, DELETE', async (t) => {
  const appId = uniquePrefix('app')
  let res = await app.inject({ url: `/admin/v1/configs/${appId}`, headers: auth(RO) })
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'SLUICE_ERR_ADMIN_NOT_FOUND')
  res = await put(appId, cfg(10))
  t.equal(res.statusCode, 200)
  t.same(res.json(), stored(10))
  const etag = res.headers.etag as string
  t.equal(etag, etagOf((await client.get(configKey(appId))) as string))
  res = await app.inject({ url: `/admin/v1/configs/${appId}`, headers: auth(RO) })
  t.equal(res.statusCode, 200)
  t.equal(res.headers.etag, etag)
  t.same(res.json(), stored(10))
  res = await app.inject({ url: '/admin/v1/configs', headers: auth(RO) })
  t.ok(res.json().appIds.includes(appId))
  res = await app.inject({ url: `/admin/v1/configs/${appId}/effective`, headers: auth(RO) })
  t.match(res.json(), { appId, source: 'app', etag, config: stored(10) })
  res = await app.inject({
    method: 'PUT',
    url: `/admin/v1/configs/${appId}`,
    headers: auth(RO),
    payload: cfg(1),
  })
  t.equal(res.statusCode, 403, 'read-only token cannot write')
  res = await app.inject({
    method: 'DELETE',
    url: `/admin/v1/configs/${appId}`,
    headers: { ...auth(RW), 'if-match': '"x"' },
  })
  t.equal(res.statusCode, 412)
  res = await app.inject({ method: 'DELETE', url: `/admin/v1/configs/${appId}`, headers: auth(RW) })
  t.equal(res.statusCode, 204)
  t.equal(await client.exists(configKey(appId)), 0)
  res = await app.inject({ url: `/admin/v1/configs/${appId}/effective`, headers: auth(RO) })
  t.match(res.json(), { appId, source: 'default' })
  res = await app.inject({ method: 'DELETE', url: '/admin/v1/configs/default', headers: auth(RW) })
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'SLUICE_ERR_ADMIN_DEFAULT_UNDELETABLE')
})

t.test('If-Match', async (t) => {
  const appId = uniquePrefix('ifm')
  let res = await put(appId, cfg(1), { 'if-match': '*' })
  t.equal(res.statusCode, 412, 'If-Match: * on a missing config')
  res = await put(appId, cfg(1))
  const etag = res.headers.etag as string
  res = await put(appId, cfg(2), { 'if-match': '"stale"' })
  t.equal(res.statusCode, 412)
  t.equal(res.json().currentEtag, etag)
  res = await put(appId, cfg(2), { 'if-match': etag })
  t.equal(res.statusCode, 200)
  t.not(res.headers.etag, etag)
  res = await put(appId, cfg(3), { 'if-none-match': '*' })
  t.equal(res.statusCode, 412, 'If-None-Match: * on an existing config')
})

t.test('10 concurrent PUTs with the same If-Match: one 200, nine 412', async (t) => {
  const appId = uniquePrefix('race')
  const etag = (await put(appId, cfg(1))).headers.etag as string
  const codes = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      put(appId, cfg(i + 2), { 'if-match': etag }).then((r) => r.statusCode),
    ),
  )
  t.equal(codes.filter((c) => c === 200).length, 1)
  t.equal(codes.filter((c) => c === 412).length, 9)
})

t.test('a config rejected with 400 leaves Redis unchanged; the body names field and rule', async (t) => {
  const appId = uniquePrefix('bad')
  await put(appId, cfg(1))
  const before = await client.get(configKey(appId))
  const hBefore = await client.llen(historyKey(appId))
  const cases: [unknown, string, RegExp][] = [
    [
      { limits: [{ name: 'a', algorithm: 'sliding-log', limit: 0, windowMs: 1000 }] },
      'limits[0].limit',
      />= 1/,
    ],
    [
      { limits: [{ name: 'a', algorithm: 'sliding-log', limit: 20000, windowMs: 1000 }] },
      'limits[0].limit',
      /10000/,
    ],
    [{ ...cfg(1), extra: true }, 'extra', /unknown field/],
    [
      { limits: [{ name: 'a', algorithm: 'nope', limit: 1, windowMs: 1000 }] },
      'limits[0].algorithm',
      /one of/,
    ],
    [{ limits: [] }, 'limits', /at least 1/],
    [{ limits: [cfg(1).limits[0], cfg(2).limits[0]] }, 'limits[1].name', /unique/],
  ]
  for (const [body, field, rule] of cases) {
    const res = await put(appId, body)
    t.equal(res.statusCode, 400, field)
    const json = res.json()
    t.equal(json.code, 'SLUICE_ERR_ADMIN_INVALID_CONFIG')
    t.match(json.message, field)
    t.match(json.message, rule)
    t.ok(json.errors.some((e: { path: string }) => e.path === field))
  }
  t.equal(await client.get(configKey(appId)), before)
  t.equal(await client.llen(historyKey(appId)), hBefore)
  let res = await app.inject({
    method: 'PUT',
    url: `/admin/v1/configs/${appId}`,
    headers: { ...auth(RW), 'content-type': 'application/json' },
    payload: '{nope',
  })
  t.equal(res.statusCode, 400, 'malformed JSON')
  res = await app.inject({
    method: 'PUT',
    url: `/admin/v1/configs/${appId}`,
    headers: { ...auth(RW), 'content-type': 'application/json' },
    payload: JSON.stringify({ ...cfg(1), pad: 'x'.repeat(70_000) }),
  })
  t.equal(res.statusCode, 413)
  t.equal(res.json().code, 'SLUICE_ERR_ADMIN_BODY_TOO_LARGE')
  res = await app.inject({ url: '/admin/v1/configs/bad%20id!', headers: auth(RO) })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'SLUICE_ERR_ADMIN_INVALID_APP_ID')
  res = await app.inject({ url: `/admin/v1/configs/${'a'.repeat(129)}`, headers: auth(RO) })
  t.equal(res.statusCode, 400)
  res = await put('b'.repeat(128), cfg(1))
  t.equal(res.statusCode, 200, 'a 128-character appId is valid')
  t.equal(await client.get(configKey(appId)), before)
})

t.test('history, rollback and audit', async (t) => {
  const appId = uniquePrefix('hist')
  for (let i = 1; i <= 3; i++) await put(appId, cfg(i))
  let res = await app.inject({ url: `/admin/v1/configs/${appId}/history`, headers: auth(RO) })
  t.equal(res.statusCode, 200)
  const versions = res.json().versions
  t.same(
    versions.map((v: { version: number }) => v.version),
    [3, 2, 1],
  )
  t.match(versions[2], { by: 'alice', action: 'put', config: stored(1) })
  res = await app.inject({
    method: 'POST',
    url: `/admin/v1/configs/${appId}/rollback`,
    headers: auth(RO),
    payload: { version: 1 },
  })
  t.equal(res.statusCode, 403)
  res = await app.inject({
    method: 'POST',
    url: `/admin/v1/configs/${appId}/rollback`,
    headers: auth(RW),
    payload: { version: 99 },
  })
  t.equal(res.statusCode, 404)
  res = await app.inject({
    method: 'POST',
    url: `/admin/v1/configs/${appId}/rollback`,
    headers: auth(RW),
    payload: { version: 1, x: 1 },
  })
  t.equal(res.statusCode, 400, 'unknown field in rollback body')
  res = await app.inject({
    method: 'POST',
    url: `/admin/v1/configs/${appId}/rollback`,
    headers: auth(RW),
    payload: { version: 1 },
  })
  t.equal(res.statusCode, 200)
  t.same(res.json(), stored(1))
  t.equal(res.headers.etag, versions[2].etag)
  res = await app.inject({ url: '/admin/v1/audit?limit=2', headers: auth(RO) })
  t.equal(res.statusCode, 200)
  const page = res.json()
  t.equal(page.entries.length, 2)
  t.match(page.entries[0], {
    sub: 'alice',
    appId,
    action: 'rollback',
    newEtag: versions[2].etag,
    oldEtag: versions[0].etag,
  })
  t.type(page.nextCursor, 'string')
  res = await app.inject({ url: `/admin/v1/audit?limit=2&cursor=${page.nextCursor}`, headers: auth(RO) })
  t.match(res.json().entries[0], { appId, action: 'put', version: 2 })
  res = await app.inject({ url: '/admin/v1/audit?cursor=zzz', headers: auth(RO) })
  t.equal(res.statusCode, 400)
})

t.test('app_ids restricts a token', async (t) => {
  const mine = uniquePrefix('mine')
  const theirs = uniquePrefix('theirs')
  await put(mine, cfg(1))
  await put(theirs, cfg(1))
  const tok = await token({ sub: 'carol', scope: 'ratelimit:read ratelimit:write', app_ids: [mine] })
  let res = await app.inject({ url: `/admin/v1/configs/${mine}`, headers: auth(tok) })
  t.equal(res.statusCode, 200)
  res = await app.inject({ url: `/admin/v1/configs/${theirs}`, headers: auth(tok) })
  t.equal(res.statusCode, 403)
  res = await app.inject({
    method: 'PUT',
    url: `/admin/v1/configs/${theirs}`,
    headers: auth(tok),
    payload: cfg(2),
  })
  t.equal(res.statusCode, 403)
  t.same(JSON.parse((await client.get(configKey(theirs))) as string).limits[0].limit, 1)
  res = await app.inject({
    method: 'PUT',
    url: '/admin/v1/configs/default',
    headers: auth(tok),
    payload: cfg(2),
  })
  t.equal(res.statusCode, 403, 'default not granted unless listed')
  res = await app.inject({ url: '/admin/v1/configs', headers: auth(tok) })
  t.same(res.json().appIds, [mine], 'list shows only allowed appIds')
  res = await app.inject({ url: '/admin/v1/audit?limit=500', headers: auth(tok) })
  t.ok(res.json().entries.every((e: { appId: string }) => e.appId === mine))
  const withDefault = await token({ scope: 'ratelimit:read', app_ids: ['default'] })
  res = await app.inject({ url: '/admin/v1/configs/default/effective', headers: auth(withDefault) })
  t.equal(res.statusCode, 200)
})

t.test('an accepted PUT reaches another instance resolver through pub/sub', async (t) => {
  const appId = uniquePrefix('pubsub')
  const other = redis.client()
  const resolver = createConfigResolver({ client: other, cacheTtlMs: 600_000 })
  t.teardown(async () => {
    await resolver.close()
    await other.quit()
  })
  await resolver.start()
  await put(appId, cfg(1))
  const first = await resolver.resolve(appId)
  t.equal(first.config.limits[0]?.limit, 1)
  await put(appId, cfg(7))
  let limit = 0
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    limit = (await resolver.resolve(appId)).config.limits[0]?.limit ?? 0
    if (limit === 7) break
    await new Promise((r) => setTimeout(r, 20))
  }
  t.equal(limit, 7, 'resolver with a 10-minute TTL sees the change at once')
  const app2 = await buildApp({ redis: client, resolver })
  t.teardown(() => app2.close())
  const res = await app2.inject({ url: `/admin/v1/configs/${appId}/effective`, headers: auth(RO) })
  t.match(res.json(), { appId, source: 'app', config: stored(7) })
})

t.test('OpenAPI document validates', async (t) => {
  const res = await app.inject({ url: '/admin/v1/openapi.json' })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  await SwaggerParser.validate(structuredClone(doc))
  t.ok(doc.paths['/admin/v1/configs/{appId}'].put, 'PUT documented')
  t.ok(doc.paths['/admin/v1/audit'].get)
  t.notOk(doc.paths['/admin/v1/openapi.json'], 'the document itself is hidden')
})
