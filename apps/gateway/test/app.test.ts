import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startRedis } from '@sluice/test-redis'
import t from 'tap'
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
