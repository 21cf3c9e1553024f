/**
 * End to end: three gateway processes started from the built output (`node apps/gateway/dist/main.js`,
 * configured by env only) share one real Redis (then a 3-master Redis Cluster), in front of a real
 * upstream. Proves: exact limits across processes, admin updates reaching every process by pub/sub,
 * fallback to the default after DELETE, admin auth, /readyz following Redis, the SIGTERM drain, and
 * the one-line exit on an invalid environment.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { freePort, startCluster, startRedis } from '@sluice/test-redis'
import { SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const SECRET = 'e2e-secret-that-is-at-least-32-characters-long'
/** Cache TTL far above the test's waits: only pub/sub can make an update visible in time. */
const LONG_TTL = '600000'

const agent = new Agent({ connections: 512, keepAliveTimeout: 10_000 })
t.teardown(() => agent.close())

// --- build ------------------------------------------------------------------------------------------

const BUILT = [
  MAIN,
  ...['limiter-core', 'fastify-limiter', 'admin-plugin'].map((p) =>
    fileURLToPath(new URL(`../../../packages/${p}/dist/index.js`, import.meta.url)),
  ),
]

async function ensureBuilt(): Promise<void> {
  if (BUILT.every((f) => existsSync(f))) return
  const out: string[] = []
  const code = await new Promise<number | null>((resolve, reject) => {
    const p = spawn('pnpm', ['turbo', 'run', 'build', '--filter=@sluice/gateway...'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    p.stdout.on('data', (c: Buffer) => out.push(c.toString()))
    p.stderr.on('data', (c: Buffer) => out.push(c.toString()))
    p.on('error', reject)
    p.on('exit', resolve)
  })
  if (code !== 0 || !BUILT.every((f) => existsSync(f))) {
    throw new Error(`building the gateway failed (exit ${code}):\n${out.join('').slice(-4000)}`)
  }
}

// --- processes --------------------------------------------------------------------------------------

interface Gw {
  readonly url: string
  readonly proc: ChildProcess
  readonly stdout: string[]
  readonly stderr: string[]
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>
}

/** Env of a child: PATH only, plus `env` (nothing of the test runner's environment leaks in). */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', ...env }
}

function run(env: Record<string, string>): Gw & { port: string } {
  const proc = spawn(process.execPath, [MAIN], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  const stdout: string[] = []
  const stderr: string[] = []
  proc.stdout?.on('data', (c: Buffer) => stdout.push(c.toString()))
  proc.stderr?.on('data', (c: Buffer) => stderr.push(c.toString()))
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  return { url: `http://127.0.0.1:${env.PORT}`, port: env.PORT ?? '', proc, stdout, stderr, exited }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Poll `probe` until it returns true; fails after `ms` with `what`. */
async function until(what: string, probe: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    try {
      if (await probe()) return
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

/** Start a gateway process and wait until its /healthz answers. Killed in teardown. */
async function startGateway(tt: Tap, env: Record<string, string>): Promise<Gw> {
  const port = String(await freePort())
  const gw = run({ HOST: '127.0.0.1', PORT: port, LOG_LEVEL: 'info', ...env })
  tt.teardown(async () => {
    if (gw.proc.exitCode === null && gw.proc.signalCode === null) {
      gw.proc.kill('SIGKILL')
      await gw.exited
    }
  })
  let exited = false
  void gw.exited.then(() => {
    exited = true
  })
  await until(
    `gateway on ${port}`,
    async () => {
      if (exited) throw new Error(`gateway exited at start: ${gw.stderr.join('')}${gw.stdout.join('')}`)
      return (await get(`${gw.url}/healthz`)).status === 200
    },
    30_000,
  ).catch((err: Error) => {
    throw exited ? new Error(`gateway exited at start: ${gw.stderr.join('')}${gw.stdout.join('')}`) : err
  })
  return gw
}

type Tap = Test

// --- HTTP -------------------------------------------------------------------------------------------

interface Res {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  json(): any
}

async function http(
  method: string,
  url: string,
  opts: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<Res> {
  const r = await request(url, {
    method: method as 'GET',
    dispatcher: agent,
    headers: {
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...opts.headers,
    },
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  })
  const body = await r.body.text()
  return {
    status: r.statusCode,
    headers: r.headers,
    body,
    json: () => JSON.parse(body),
  }
}

const get = (url: string, headers: Record<string, string> = {}) => http('GET', url, { headers })

async function token(scope: string, extra: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ scope, ...extra })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('e2e-test')
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET))
}

const bearer = (tok: string) => ({ authorization: `Bearer ${tok}` })

/** `n` concurrent requests for `appId`, spread round-robin over `gws`; the responses. */
async function burst(gws: readonly Gw[], appId: string, n: number, path = '/api/thing'): Promise<Res[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      get(`${(gws[i % gws.length] as Gw).url}${path}`, { 'x-app-id': appId }),
    ),
  )
}

/** Wait until every gateway's resolver serves `limit` for `appId` (read through `/effective`, which counts nothing). */
async function effectiveEverywhere(
  gws: readonly Gw[],
  appId: string,
  auth: string,
  check: (eff: any) => boolean,
  ms = 10_000,
): Promise<void> {
  await Promise.all(
    gws.map((gw) =>
      until(
        `${gw.url} serving the new config of ${appId}`,
        async () => {
          const r = await get(`${gw.url}/admin/v1/configs/${appId}/effective`, bearer(auth))
          return r.status === 200 && check(r.json())
        },
        ms,
      ),
    ),
  )
}

function exactCheck(
  tt: Tap,
  responses: readonly Res[],
  appId: string,
  limit: number,
  limitName: string,
): void {
  const ok = responses.filter((r) => r.status >= 200 && r.status < 300)
  const blocked = responses.filter((r) => r.status === 429)
  tt.equal(ok.length, limit, `exactly ${limit} admitted`)
  tt.equal(blocked.length, responses.length - limit, `exactly ${responses.length - limit} are 429`)
  tt.same(
    responses.filter((r) => r.status !== 429 && (r.status < 200 || r.status >= 300)).map((r) => r.status),
    [],
    'no other status',
  )
  const other = responses.filter((r) => r.status !== 429 && (r.status < 200 || r.status >= 300))
  if (other.length > 0)
    tt.comment(
      `other answers: ${other
        .map((r) => r.body)
        .join(' | ')
        .slice(0, 2000)}`,
    )
  const b = blocked[0]
  if (b === undefined) return
  const body = b.json()
  tt.match(body, {
    statusCode: 429,
    error: 'Too Many Requests',
    message: String,
    appId,
    limit: limitName,
    retryAfterMs: Number,
  })
  tt.ok(body.retryAfterMs > 0, 'retryAfterMs > 0')
  const retryAfter = String(b.headers['retry-after'])
  tt.match(retryAfter, /^\d+$/, 'Retry-After is an integer')
  tt.ok(Number(retryAfter) >= 1, 'Retry-After >= 1')
  tt.ok(b.headers['ratelimit-policy'], '429 carries RateLimit-Policy')
  tt.equal(ok[0]?.json().upstream, true, 'admitted requests were proxied to the upstream')
}

/** Comment the store errors the processes logged (diagnostics when an exact check fails). */
function storeErrors(tt: Tap, gws: readonly Gw[]): void {
  const lines = gws.flatMap((g) => g.stdout.join('').split('\n')).filter((l) => l.includes('store_error'))
  if (lines.length > 0) tt.comment(`store errors:\n${lines.join('\n').slice(0, 4000)}`)
}

// --- the upstream -----------------------------------------------------------------------------------

function startUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const reply = () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ upstream: true, url: req.url, app: req.headers['x-app-id'] }))
    }
    if (req.url?.startsWith('/slow')) setTimeout(reply, 1500)
    else reply()
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
    ),
  )
}

const perMinute = (limit: number) => ({
  limits: [{ name: 'per-minute', algorithm: 'sliding-log', limit, windowMs: 60_000 }],
  failMode: 'closed',
  shadow: false,
})

// --- tests ------------------------------------------------------------------------------------------

t.before(ensureBuilt)

t.test('invalid environment: exit 1 with one line naming the variable', async (t) => {
  const cases = [
    ['PORT', 'abc'],
    ['REDIS_TIMEOUT_MS', '-1'],
  ] as const
  await Promise.all(
    cases.map(async ([name, value]) => {
      const gw = run({ PORT: '0', [name]: value })
      const code = await Promise.race([gw.exited, sleep(20_000).then(() => 'hung' as const)])
      if (code === 'hung') gw.proc.kill('SIGKILL')
      t.equal(code, 1, `${name}=${value}: exit code 1`)
      const err = gw.stderr.join('').trimEnd()
      t.equal(err.split('\n').length, 1, `${name}: one line on stderr`)
      t.match(err, new RegExp(`\\b${name}\\b`), `${name}: the line names the variable`)
    }),
  )
})

t.test('three processes on one standalone Redis', async (t) => {
  const redis = await startRedis({ own: true })
  t.teardown(() => redis.stop())
  const up = await startUpstream()
  t.teardown(() => new Promise<void>((r) => up.server.close(() => r())))
  const env = {
    REDIS_URL: redis.url,
    UPSTREAM_URL: up.url,
    ADMIN_JWT_SECRET: SECRET,
    CONFIG_CACHE_TTL_MS: LONG_TTL,
    // Generous: 300 concurrent requests on a loaded CI machine must not time out into 503s.
    REDIS_TIMEOUT_MS: '2000',
  }
  const gws = await Promise.all([startGateway(t, env), startGateway(t, env), startGateway(t, env)])
  const [a, b, c] = gws as [Gw, Gw, Gw]
  for (const gw of gws)
    await until(`${gw.url}/readyz`, async () => (await get(`${gw.url}/readyz`)).status === 200)
  const rw = await token('ratelimit:read ratelimit:write')
  const ro = await token('ratelimit:read')

  await t.test('admin auth: 401 without a token, 403 without the scope', async (t) => {
    const none = await get(`${a.url}/admin/v1/configs`)
    t.equal(none.status, 401)
    t.ok(String(none.headers['www-authenticate']).startsWith('Bearer'), 'WWW-Authenticate: Bearer')
    const bad = await get(`${a.url}/admin/v1/configs`, { authorization: 'Bearer not.a.jwt' })
    t.equal(bad.status, 401)
    const put = await http('PUT', `${a.url}/admin/v1/configs/e2e-auth`, {
      headers: bearer(ro),
      body: perMinute(5),
    })
    t.equal(put.status, 403, 'PUT with only ratelimit:read')
    t.equal((await get(`${a.url}/admin/v1/configs`, bearer(ro))).status, 200, 'GET with ratelimit:read')
    const invalid = await http('PUT', `${a.url}/admin/v1/configs/e2e-auth`, {
      headers: bearer(rw),
      body: { limits: [{ name: 'x', algorithm: 'sliding-log', limit: 0, windowMs: 1000 }] },
    })
    t.equal(invalid.status, 400, 'schema error: 400')
    t.match(invalid.json().message, /limit/, 'the body names the field')
  })

  await t.test('exact limit across the three: 300 concurrent -> 100 admitted, 200 refused', async (t) => {
    const put = await http('PUT', `${a.url}/admin/v1/configs/e2e-exact`, {
      headers: bearer(rw),
      body: perMinute(100),
    })
    t.equal(put.status, 200)
    t.ok(put.headers.etag, 'ETag')
    await effectiveEverywhere(
      gws,
      'e2e-exact',
      ro,
      (e) => e.source === 'app' && e.config.limits[0].limit === 100,
    )
    const responses = await burst(gws, 'e2e-exact', 300)
    exactCheck(t, responses, 'e2e-exact', 100, 'per-minute')
    storeErrors(t, gws)
    for (const gw of gws) {
      t.ok(
        responses.some((r, i) => gws[i % 3] === gw && r.status === 200),
        `${gw.url} admitted some`,
      )
    }
  })

  await t.test('an update through one process is enforced by all three (pub/sub)', async (t) => {
    const appId = 'e2e-pubsub'
    // Every process caches the default for this appId (TTL 10 min: only pub/sub can refresh it).
    for (const gw of gws) {
      const r = await get(`${gw.url}/x`, { 'x-app-id': appId })
      t.equal(r.status, 200)
      t.match(String(r.headers['ratelimit-policy']), /"default"/, 'default config before the update')
    }
    const put = await http('PUT', `${b.url}/admin/v1/configs/${appId}`, {
      headers: bearer(rw),
      body: perMinute(2),
    })
    t.equal(put.status, 200)
    await effectiveEverywhere(gws, appId, ro, (e) => e.source === 'app' && e.config.limits[0].limit === 2)
    const after = await burst(gws, appId, 6)
    t.equal(after.filter((r) => r.status === 200).length, 2, 'limit 2 enforced across the three')
    t.equal(after.filter((r) => r.status === 429).length, 4)
    for (const r of after) t.match(String(r.headers['ratelimit-policy']), /"per-minute";q=2;w=60/)

    await t.test('DELETE: every process falls back to the default', async (t) => {
      const del = await http('DELETE', `${c.url}/admin/v1/configs/${appId}`, { headers: bearer(rw) })
      t.equal(del.status, 204)
      t.equal((await get(`${a.url}/admin/v1/configs/${appId}`, bearer(ro))).status, 404)
      await effectiveEverywhere(gws, appId, ro, (e) => e.source === 'default')
      for (const gw of gws) {
        const r = await get(`${gw.url}/x`, { 'x-app-id': appId })
        t.equal(r.status, 200, `${gw.url}: admitted under the default again`)
        t.match(String(r.headers['ratelimit-policy']), /"default"/)
      }
      const delDefault = await http('DELETE', `${a.url}/admin/v1/configs/default`, { headers: bearer(rw) })
      t.equal(delDefault.status, 409, 'the default cannot be deleted')
    })
  })

  await t.test('/readyz: 503 while Redis is down, 200 when it is back', async (t) => {
    await redis.kill()
    await until('503 from /readyz', async () => (await get(`${a.url}/readyz`)).status === 503)
    const down = await get(`${a.url}/readyz`)
    t.equal(down.status, 503)
    t.match(down.json(), { reason: /redis/i })
    t.equal((await get(`${a.url}/healthz`)).status, 200, 'liveness does not depend on Redis')
    await redis.restart()
    // The empty Redis gets its default config back from the gateways' guard.
    for (const gw of gws) {
      await until(
        `200 from ${gw.url}/readyz`,
        async () => (await get(`${gw.url}/readyz`)).status === 200,
        30_000,
      )
    }
    t.pass('every process ready again')
    const r = await get(`${b.url}/x`, { 'x-app-id': 'after-restart' })
    t.equal(r.status, 200, 'requests are decided again')
  })

  await t.test('SIGTERM drains an in-flight request, then the process exits 0', async (t) => {
    const slow = get(`${c.url}/slow`, { 'x-app-id': 'e2e-drain' })
    await sleep(400)
    c.proc.kill('SIGTERM')
    const r = await slow
    t.equal(r.status, 200, 'the in-flight request completed')
    t.equal(r.json().url, '/slow')
    const code = await Promise.race([c.exited, sleep(20_000).then(() => 'hung' as const)])
    t.equal(code, 0, 'exit code 0')
    t.match(c.stdout.join(''), /"event":"gateway.stopped"/, 'logged the stop')
    t.notMatch(c.stdout.join('') + c.stderr.join(''), SECRET, 'the JWT secret never appears in the logs')
  })
})

t.test('three processes on a 3-master Redis Cluster: the same exact limit', async (t) => {
  const cluster = await startCluster()
  t.teardown(() => cluster.stop())
  const up = await startUpstream()
  t.teardown(() => new Promise<void>((r) => up.server.close(() => r())))
  const env = {
    REDIS_CLUSTER_NODES: cluster.seeds,
    UPSTREAM_URL: up.url,
    ADMIN_JWT_SECRET: SECRET,
    CONFIG_CACHE_TTL_MS: LONG_TTL,
    // Generous: 300 concurrent requests on a loaded CI machine must not time out into 503s.
    REDIS_TIMEOUT_MS: '2000',
  }
  const gws = await Promise.all([startGateway(t, env), startGateway(t, env), startGateway(t, env)])
  for (const gw of gws)
    await until(`${gw.url}/readyz`, async () => (await get(`${gw.url}/readyz`)).status === 200)
  const rw = await token('ratelimit:read ratelimit:write')
  const put = await http('PUT', `${(gws[1] as Gw).url}/admin/v1/configs/e2e-cluster`, {
    headers: bearer(rw),
    body: perMinute(100),
  })
  t.equal(put.status, 200)
  await effectiveEverywhere(
    gws,
    'e2e-cluster',
    rw,
    (e) => e.source === 'app' && e.config.limits[0].limit === 100,
  )
  const responses = await burst(gws, 'e2e-cluster', 300)
  exactCheck(t, responses, 'e2e-cluster', 100, 'per-minute')
})
