import { requireScope, sluiceAuth } from '@sluice/admin-plugin'
import { startRedis } from '@sluice/test-redis'
import Fastify from 'fastify'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import t from 'tap'
import { auth, buildApp, SECRET, token } from './helpers.js'

const redis = await startRedis()
t.teardown(() => redis.stop())
const client = redis.client()
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
const now = () => Math.floor(Date.now() / 1000)
const LIST = '/admin/v1/configs'

t.test('HS256: every 401 / 403 path', async (t) => {
  const app = await buildApp({
    redis: client,
    jwt: { secret: SECRET, issuer: 'sluice-tests', audience: 'sluice-admin' },
  })
  t.teardown(() => app.close())
  const claims = { sub: 'u', scope: 'ratelimit:read', iss: 'sluice-tests', aud: 'sluice-admin' }
  const get = (headers: Record<string, string> = {}) => app.inject({ url: LIST, headers })

  t.equal((await get(auth(await token(claims)))).statusCode, 200, 'valid token')
  let res = await get()
  t.equal(res.statusCode, 401, 'missing token')
  t.match(res.headers['www-authenticate'], /^Bearer realm="sluice"/)
  t.match(res.json(), { statusCode: 401, code: 'SLUICE_ERR_ADMIN_UNAUTHORIZED', error: 'Unauthorized' })
  const cases: [string, string][] = [
    ['malformed', 'Bearer not.a.jwt'],
    ['not bearer', 'Basic dXNlcjpwYXNz'],
    ['alg none', `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, exp: now() + 60 })}.`],
    ['oversized', `Bearer ${'a'.repeat(9000)}`],
    [
      'expired',
      `Bearer ${await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime(now() - 10)
        .sign(new TextEncoder().encode(SECRET))}`,
    ],
    [
      'not yet valid',
      `Bearer ${await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('5m')
        .setNotBefore(now() + 600)
        .sign(new TextEncoder().encode(SECRET))}`,
    ],
    [
      'no exp',
      `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET))}`,
    ],
    ['wrong iss', `Bearer ${await token({ ...claims, iss: 'evil' })}`],
    ['wrong aud', `Bearer ${await token({ ...claims, aud: 'other' })}`],
    ['wrong secret', `Bearer ${await token(claims, 'another-secret-that-is-long-enough-xxxxx')}`],
    [
      'HS384',
      `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'HS384' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET))}`,
    ],
    ['app_ids not an array', `Bearer ${await token({ ...claims, app_ids: 'x' })}`],
  ]
  for (const [name, header] of cases) {
    res = await get({ authorization: header })
    t.equal(res.statusCode, 401, name)
    t.match(
      res.headers['www-authenticate'],
      /^Bearer realm="sluice", error="invalid_token"/,
      `${name}: WWW-Authenticate`,
    )
    t.match(res.json().code, /^SLUICE_ERR_ADMIN_(INVALID_TOKEN|TOKEN_EXPIRED)$/)
    t.notMatch(res.body, header.slice(7, 40), `${name}: the token is not echoed`)
  }
  res = await get(auth(await token({ ...claims, scope: 'ratelimit:write' })))
  t.equal(res.statusCode, 403, 'missing read scope')
  t.match(res.headers['www-authenticate'], /error="insufficient_scope"/)
  t.equal(res.json().code, 'SLUICE_ERR_ADMIN_FORBIDDEN')
  res = await get(auth(await token({ sub: 'u', iss: 'sluice-tests', aud: 'sluice-admin' })))
  t.equal(res.statusCode, 403, 'no scope at all')
  res = await app.inject({ method: 'PUT', url: `${LIST}/x`, headers: auth(await token(claims)), payload: {} })
  t.equal(res.statusCode, 403, 'read scope cannot write')
})

t.test('RS256 public key: HS256 signed with the public key is refused', async (t) => {
  const { publicKey, privateKey } = await generateKeyPair('RS256')
  const pem = await exportSPKI(publicKey)
  const app = await buildApp({ redis: client, jwt: { publicKey: pem } })
  t.teardown(() => app.close())
  const claims = { sub: 'u', scope: 'ratelimit:read' }
  const good = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256' })
    .setExpirationTime('5m')
    .sign(privateKey)
  t.equal((await app.inject({ url: LIST, headers: auth(good) })).statusCode, 200)
  const confused = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(pem))
  t.equal((await app.inject({ url: LIST, headers: auth(confused) })).statusCode, 401)
  const none = `${b64({ alg: 'none' })}.${b64({ ...claims, exp: now() + 60 })}.`
  t.equal((await app.inject({ url: LIST, headers: auth(none) })).statusCode, 401)
  const other = await generateKeyPair('RS256')
  const forged = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256' })
    .setExpirationTime('5m')
    .sign(other.privateKey)
  t.equal((await app.inject({ url: LIST, headers: auth(forged) })).statusCode, 401)
})

t.test('ES256 public key', async (t) => {
  const { publicKey, privateKey } = await generateKeyPair('ES256')
  const app = await buildApp({ redis: client, jwt: { publicKey: await exportSPKI(publicKey) } })
  t.teardown(() => app.close())
  const good = await new SignJWT({ scope: 'ratelimit:read' })
    .setProtectedHeader({ alg: 'ES256' })
    .setExpirationTime('5m')
    .sign(privateKey)
  t.equal((await app.inject({ url: LIST, headers: auth(good) })).statusCode, 200)
  const rs = await generateKeyPair('RS256')
  const wrongAlg = await new SignJWT({ scope: 'ratelimit:read' })
    .setProtectedHeader({ alg: 'RS256' })
    .setExpirationTime('5m')
    .sign(rs.privateKey)
  t.equal((await app.inject({ url: LIST, headers: auth(wrongAlg) })).statusCode, 401)
})

t.test('options are validated at registration', async (t) => {
  await t.rejects(buildApp({ redis: client, jwt: {} }), { code: 'SLUICE_ERR_ADMIN_OPTIONS' })
  await t.rejects(buildApp({ redis: client, jwt: { secret: 'short' } }), { code: 'SLUICE_ERR_ADMIN_OPTIONS' })
  await t.rejects(buildApp({ redis: client, jwt: { publicKey: 'not a pem' } }), {
    code: 'SLUICE_ERR_ADMIN_OPTIONS',
  })
  await t.rejects(buildApp({ redis: client, jwt: { secret: SECRET, publicKey: 'x' } }), {
    code: 'SLUICE_ERR_ADMIN_OPTIONS',
  })
})

t.test('failed authentications are rate limited per address', async (t) => {
  const app = await buildApp({ redis: client, bruteForce: { maxFailures: 5, windowMs: 60_000 } })
  t.teardown(() => app.close())
  const codes: number[] = []
  for (let i = 0; i < 8; i++) {
    codes.push((await app.inject({ url: LIST, headers: { authorization: 'Bearer bad.bad.bad' } })).statusCode)
  }
  t.same(codes, [401, 401, 401, 401, 401, 429, 429, 429])
  const good = await token({ scope: 'ratelimit:read' })
  const res = await app.inject({ url: LIST, headers: auth(good) })
  t.equal(res.statusCode, 429, 'blocked before verifying again, even a good token')
  t.ok(Number(res.headers['retry-after']) >= 1)
  t.equal(res.json().code, 'SLUICE_ERR_ADMIN_TOO_MANY_AUTH_FAILURES')
  const other = await app.inject({ url: LIST, headers: auth(good), remoteAddress: '10.0.0.9' })
  t.equal(other.statusCode, 200, 'another address is not affected')
})

t.test('sluiceAuth + requireScope protect another route (POST /v1/check)', async (t) => {
  const app = Fastify()
  await app.register(sluiceAuth, { jwt: { secret: SECRET } })
  app.post('/v1/check', { onRequest: requireScope('ratelimit:check') }, async () => ({ allowed: true }))
  app.get('/guarded', { preHandler: app.sluiceAuth.guard('ratelimit:read') }, async () => 'ok')
  await app.ready()
  t.teardown(() => app.close())
  t.equal((await app.inject({ method: 'POST', url: '/v1/check', payload: {} })).statusCode, 401)
  t.equal(
    (
      await app.inject({
        method: 'POST',
        url: '/v1/check',
        headers: auth(await token({ scope: 'ratelimit:read' })),
        payload: {},
      })
    ).statusCode,
    403,
  )
  const ok = await app.inject({
    method: 'POST',
    url: '/v1/check',
    headers: auth(await token({ scope: 'ratelimit:check' })),
    payload: {},
  })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { allowed: true })
  t.equal(
    (await app.inject({ url: '/guarded', headers: auth(await token({ scope: 'ratelimit:read' })) }))
      .statusCode,
    200,
  )
})
