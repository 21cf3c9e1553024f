import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startRedis } from '@sluice/test-redis'
import { SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { createApp } from '../src/app.js'
import { loadSettings } from '../src/settings.js'

const quiet = { logStream: { write: () => {} } }

function upstream(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler)
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
    ),
  )
}

t.test('embedded store: demo mode, health, reserved paths', async (t) => {
  const gw = await createApp(loadSettings({ LOG_LEVEL: 'silent' }), quiet)
  t.teardown(() => gw.close())
  const app = gw.app
  t.equal((await app.inject('/healthz')).statusCode, 200)
  t.equal((await app.inject('/readyz')).statusCode, 200)
  const demo = await app.inject({ url: '/hello', headers: { 'x-app-id': 'demo-app' } })
  t.equal(demo.statusCode, 200)
  t.equal(demo.json().mode, 'demo')
  t.equal(demo.json().appId, 'demo-app')
  t.ok(demo.headers['ratelimit-policy'], 'limited response has RateLimit-Policy')
  t.equal((await app.inject({ url: '/x', headers: { 'x-app-id': 'bad id!' } })).statusCode, 400)
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    const r = await app.inject(path)
    t.notOk(r.headers['ratelimit-policy'], `${path} is not rate limited`)
  }
  const metrics = await app.inject('/metrics')
  t.equal(metrics.statusCode, 200)
  t.match(metrics.body, /sluice_decisions_total/)
  const check = await app.inject({
    method: 'POST',
    url: '/v1/check',
    payload: { appId: 'demo-app', cost: 1 },
  })
  t.equal(check.statusCode, 200)
  t.equal(check.json().allowed, true)
  t.ok(Array.isArray(check.json().limits))
  t.equal((await app.inject({ method: 'POST', url: '/v1/check', payload: { cost: 1 } })).statusCode, 400)
  for (const cost of ['1e3', ' 2', true, [3], 1.5, 0]) {
    const r = await app.inject({ method: 'POST', url: '/v1/check', payload: { appId: 'demo-app', cost } })
    t.equal(r.statusCode, 400, `regression: cost ${JSON.stringify(cost)} is refused, not coerced`)
  }
  for (const [method, url] of [
    ['GET', '/v1/check'],
    ['POST', '/healthz'],
    ['DELETE', '/metrics'],
    ['PUT', '/readyz'],
  ] as const) {
    const r = await app.inject({ method, url, headers: { 'x-app-id': 'demo-app' } })
    t.equal(r.statusCode, 405, `${method} ${url}: 405, not the catch-all`)
    t.notOk(r.headers['ratelimit-policy'], `${method} ${url} is not rate limited`)
    t.ok(r.headers.allow)
  }
})

t.test('proxy: forwards, 502, 504', async (t) => {
  const up = await upstream((req, res) => {
    if (req.url?.startsWith('/slow')) return setTimeout(() => res.end('late'), 2000)
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          body,
          xff: req.headers['x-forwarded-for'],
          app: req.headers['x-app-id'],
        }),
      )
    })
  })
  t.teardown(() => up.server.close())
  const gw = await createApp(loadSettings({ LOG_LEVEL: 'silent', UPSTREAM_URL: up.url }), {
    ...quiet,
    upstreamTimeoutMs: 300,
  })
  t.teardown(() => gw.close())
  const r = await gw.app.inject({
    method: 'POST',
    url: '/a/b?q=1',
    headers: { 'x-app-id': 'p1', 'content-type': 'text/plain' },
    payload: 'hi',
  })
  t.equal(r.statusCode, 200)
  t.same(r.json().method, 'POST')
  t.same(r.json().url, '/a/b?q=1')
  t.same(r.json().body, 'hi')
  t.same(r.json().app, 'p1')
  t.ok(r.json().xff, 'x-forwarded-for added')
  const slow = await gw.app.inject({ url: '/slow', headers: { 'x-app-id': 'p1' } })
  t.equal(slow.statusCode, 504)
  const dead = await upstream(() => {})
  await new Promise((r) => dead.server.close(r))
  const gw2 = await createApp(loadSettings({ LOG_LEVEL: 'silent', UPSTREAM_URL: dead.url }), quiet)
  t.teardown(() => gw2.close())
  const bad = await gw2.app.inject({ url: '/x', headers: { 'x-app-id': 'p1' } })
  t.equal(bad.statusCode, 502)
})

t.test('redis: readyz up and down', async (t) => {
  const redis = await startRedis({ own: true })
  t.teardown(() => redis.stop())
  const gw = await createApp(
    loadSettings({ LOG_LEVEL: 'silent', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '200' }),
    quiet,
  )
  t.teardown(() => gw.close())
  let ready = 0
  for (let i = 0; i < 50 && ready !== 200; i++) {
    ready = (await gw.app.inject('/readyz')).statusCode
    if (ready !== 200) await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(ready, 200, 'ready with Redis up')
  await redis.pause()
  const down = await gw.app.inject('/readyz')
  t.equal(down.statusCode, 503)
  t.match(down.json().reason, /redis/)
  await redis.resume()
})

const SECRET = 'app-test-secret-that-is-at-least-32-characters'

function token(scope: string): Promise<string> {
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('app-test')
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET))
}

async function readyApp(t: Test, env: Record<string, string>) {
  const redis = await startRedis({ own: true })
  t.teardown(() => redis.stop())
  const gw = await createApp(
    loadSettings({ LOG_LEVEL: 'silent', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '1000', ...env }),
    quiet,
  )
  t.teardown(() => gw.close())
  let ready = 0
  for (let i = 0; i < 100 && ready !== 200; i++) {
    ready = (await gw.app.inject('/readyz')).statusCode
    if (ready !== 200) await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(ready, 200, 'ready')
  return Object.assign(gw, { testRedis: redis })
}

t.test('POST /v1/check with a JWT key: 401 / 403 / 200, and it counts like a request', async (t) => {
  const gw = await readyApp(t, { ADMIN_JWT_SECRET: SECRET })
  const app = gw.app
  const payload = { appId: 'check-app', cost: 1 }
  const none = await app.inject({ method: 'POST', url: '/v1/check', payload })
  t.equal(none.statusCode, 401, 'no token: 401')
  t.match(String(none.headers['www-authenticate']), /^Bearer/)
  const read = await token('ratelimit:read ratelimit:write')
  const wrong = await app.inject({
    method: 'POST',
    url: '/v1/check',
    payload,
    headers: { authorization: `Bearer ${read}` },
  })
  t.equal(wrong.statusCode, 403, 'token without ratelimit:check: 403')
  const put = await app.inject({
    method: 'PUT',
    url: '/admin/v1/configs/check-app',
    headers: { authorization: `Bearer ${read}` },
    payload: {
      limits: [{ name: 'per-minute', algorithm: 'sliding-log', limit: 3, windowMs: 60_000 }],
      failMode: 'closed',
      shadow: false,
    },
  })
  t.equal(put.statusCode, 200, 'config stored')
  const auth = { authorization: `Bearer ${await token('ratelimit:check')}` }
  const first = await app.inject({
    method: 'POST',
    url: '/v1/check',
    payload: { appId: 'check-app', cost: 2 },
    headers: auth,
  })
  t.equal(first.statusCode, 200)
  t.match(first.json(), {
    allowed: true,
    limits: [{ name: 'per-minute', limit: 3, remaining: 1 }],
    retryAfterMs: 0,
  })
  // A request through the gateway spends from the same budget.
  const viaProxy = await app.inject({ url: '/anything', headers: { 'x-app-id': 'check-app' } })
  t.equal(viaProxy.statusCode, 200, 'the third unit is admitted as a request')
  const refused = await app.inject({ method: 'POST', url: '/v1/check', payload, headers: auth })
  t.equal(refused.statusCode, 200, '/v1/check answers 200 even when refused')
  t.equal(refused.json().allowed, false, 'the budget is spent')
  t.ok(refused.json().retryAfterMs > 0, 'retryAfterMs > 0')
  const blocked = await app.inject({ url: '/anything', headers: { 'x-app-id': 'check-app' } })
  t.equal(blocked.statusCode, 429, 'requests are refused too')

  // failMode closed: a store failure is a 503 with Retry-After: 1 here too, never a 200 "refused".
  const put2 = await app.inject({
    method: 'PUT',
    url: '/admin/v1/configs/check-app-2',
    headers: { authorization: `Bearer ${read}` },
    payload: {
      limits: [{ name: 'per-minute', algorithm: 'sliding-log', limit: 100, windowMs: 60_000 }],
      failMode: 'closed',
    },
  })
  t.equal(put2.statusCode, 200)
  const warm = await app.inject({
    method: 'POST',
    url: '/v1/check',
    payload: { appId: 'check-app-2' },
    headers: auth,
  })
  t.equal(warm.json().allowed, true, 'config cached before the outage')
  await gw.testRedis.pause()
  t.teardown(() => gw.testRedis.resume())
  const outage = await app.inject({
    method: 'POST',
    url: '/v1/check',
    payload: { appId: 'check-app-2', cost: 1 },
    headers: auth,
  })
  t.equal(outage.statusCode, 503, 'store down + failMode closed: 503')
  t.equal(outage.headers['retry-after'], '1')
  t.equal(outage.json().appId, 'check-app-2')
  await gw.testRedis.resume()
})

t.test('ADMIN_PORT: the admin API only on the admin listener', async (t) => {
  const gw = await readyApp(t, { ADMIN_JWT_SECRET: SECRET, ADMIN_PORT: '0', PORT: '0' })
  t.ok(gw.adminApp, 'a second app')
  const auth = { authorization: `Bearer ${await token('ratelimit:read')}` }
  const onMain = await gw.app.inject({ url: '/admin/v1/configs', headers: auth })
  t.equal(onMain.statusCode, 404, 'not on PORT')
  t.notOk(onMain.headers['ratelimit-policy'], 'and not rate limited as a request there')
  const onAdmin = await gw.adminApp?.inject({ url: '/admin/v1/configs', headers: auth })
  t.equal(onAdmin?.statusCode, 200, 'served on ADMIN_PORT')
  t.equal((await gw.adminApp?.inject({ url: '/admin/v1/configs' }))?.statusCode, 401, 'still needs a token')
  t.equal(
    (await gw.adminApp?.inject({ url: '/hello', headers: { 'x-app-id': 'a' } }))?.statusCode,
    404,
    'the admin listener proxies nothing',
  )
  const longId = 'a'.repeat(128)
  const long = await gw.adminApp?.inject({ url: `/admin/v1/configs/${longId}`, headers: auth })
  t.equal(long?.statusCode, 404, 'regression: a 128-character appId reaches the route (no 414)')
  t.equal(long?.json().statusCode, 404)
  const { url, adminUrl } = await gw.listen()
  t.ok(adminUrl, 'the admin listener is bound')
  t.not(url, adminUrl)
  const r = await fetch(`${adminUrl}/admin/v1/configs`, { headers: auth })
  t.equal(r.status, 200, 'over the network too')
  t.equal((await fetch(`${url}/admin/v1/configs`, { headers: auth })).status, 404)
})
