// Hostile input, property-based (fast-check): config payloads through the admin API, appId
// headers, admin tokens, and floods of random appIds. Each gets the right 4xx, never a 5xx,
// nothing is stored that fails the schema, and caches / metric labels stay within their bounds.
import { generateKeyPairSync } from 'node:crypto'
import { startRedis, uniquePrefix } from '@sluice/test-redis'
import fc from 'fast-check'
import { SignJWT } from 'jose'
import t from 'tap'
import { APP_ID_RE, isValidConfig } from '../src/contract.js'
import { startInProcess } from '../src/in-process.js'
import { labelValues } from '../src/metrics.js'

const FULL = process.env.SLUICE_RELIABILITY_FULL === '1'
const RUNS = FULL ? 1000 : 150
const SECRET = 'reliability-suite-secret-0123456789abcdef'
const redis = await startRedis({ own: true })
const direct = redis.client()
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
const g = await startInProcess({ REDIS_URL: redis.url, ADMIN_JWT_SECRET: SECRET, REDIS_TIMEOUT_MS: '1000' })
const gRsa = await startInProcess({
  REDIS_URL: redis.url,
  ADMIN_JWT_PUBLIC_KEY: publicPem,
  REDIS_TIMEOUT_MS: '1000',
})
t.teardown(async () => {
  await g.close()
  await gRsa.close()
  await redis.stop()
})
const p = uniquePrefix('hostile')
const key = new TextEncoder().encode(SECRET)
const token = (claims: Record<string, unknown> = {}, alg = 'HS256') =>
  new SignJWT({ scope: 'ratelimit:read ratelimit:write', ...claims })
    .setProtectedHeader({ alg })
    .setSubject('reliability')
    .setExpirationTime('10m')
    .sign(key)
const writeToken = await token()
let addr = 0
/** A distinct client address per request, so the brute-force guard of one case never blocks another. */
const nextAddr = () => `10.${(++addr >> 16) & 255}.${(addr >> 8) & 255}.${addr & 255}`
const tried: Record<string, number> = {}

async function put(appId: string, body: string, bearer = writeToken) {
  return g.gw.app.inject({
    method: 'PUT',
    url: `/admin/v1/configs/${encodeURIComponent(appId)}`,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    payload: body,
    remoteAddress: nextAddr(),
  })
}

// --- arbitraries -------------------------------------------------------------------------------
const weirdNumber = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.integer({ min: 1, max: 2_678_400_001 }),
  fc.constantFrom(0, -1, 1e9, 1e9 + 1, 10_000, 10_001, 2_678_400_000, 2_678_400_001, 1.5, 1e308, -0),
  fc.double(),
  fc.constantFrom('10', null, true, [], {}),
)
const weirdName = fc.oneof(
  fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,31}$/),
  fc.constantFrom('', 'A', '-a', 'a'.repeat(33), 'ünïcødé', '名前', '😀', 'a b', '__proto__', 'constructor'),
  fc.string({ unit: 'binary', maxLength: 40 }),
)
const limitArb = fc.record(
  {
    name: weirdName,
    algorithm: fc.oneof(
      fc.constantFrom('sliding-log', 'sliding-window', 'token-bucket', 'fixed-window'),
      fc.constantFrom('SLIDING-LOG', 'leaky-bucket', '', 'sliding-log '),
    ),
    limit: fc.oneof(fc.integer({ min: 1, max: 100 }), weirdNumber),
    windowMs: fc.oneof(fc.integer({ min: 1, max: 60_000 }), weirdNumber),
    extra: fc.anything(),
  },
  { requiredKeys: ['name', 'algorithm', 'limit', 'windowMs'] },
)
const deep = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer(),
    fc.array(tie('node'), { maxLength: 3 }),
  ),
})).node
const configArb = fc.oneof(
  // mostly-plausible configs with one thing wrong (or nothing)
  fc.record(
    {
      limits: fc.oneof(
        fc.array(limitArb, { minLength: 1, maxLength: 3 }),
        fc.array(limitArb, { minLength: 0, maxLength: 14 }),
        limitArb.map((l) => [l, l]), // duplicated names
      ),
      failMode: fc.oneof(fc.constantFrom('open', 'closed', 'local'), fc.string({ maxLength: 8 })),
      shadow: fc.oneof(fc.boolean(), fc.constantFrom('true', 0, null)),
      unknown: fc.anything(),
    },
    { requiredKeys: ['limits'] },
  ),
  fc.anything(),
  deep.map((d) => ({ limits: d })),
)
const validConfigArb = fc.record(
  {
    limits: fc.uniqueArray(
      fc.record({
        name: fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,31}$/),
        algorithm: fc.constantFrom('sliding-log', 'sliding-window', 'token-bucket', 'fixed-window'),
        limit: fc.integer({ min: 1, max: 10_000 }),
        windowMs: fc.integer({ min: 1, max: 2_678_400_000 }),
      }),
      { minLength: 1, maxLength: 10, selector: (l) => l.name },
    ),
    failMode: fc.constantFrom('open', 'closed', 'local'),
    shadow: fc.boolean(),
  },
  { requiredKeys: ['limits'] },
)
const rawBody = fc.oneof(
  validConfigArb.map((c) => ({ body: JSON.stringify(c), kind: 'valid' })),
  configArb.map((c) => ({ body: JSON.stringify(c) ?? 'null', kind: 'json' })),
  fc
    .constantFrom(
      '{"limits":[{"name":"a","algorithm":"sliding-log","limit":NaN,"windowMs":1000}]}',
      '{"limits":[{"name":"a","algorithm":"sliding-log","limit":Infinity,"windowMs":1000}]}',
      `{"limits":${'['.repeat(5000)}${']'.repeat(5000)}}`,
      `{"limits":[${Array.from({ length: 2000 }, (_, i) => `{"name":"n${i}","algorithm":"fixed-window","limit":1,"windowMs":1}`).join(',')}]}`,
      '{"limits":[{"name":"a","algorithm":"sliding-log","limit":1,"windowMs":1000}],"limits":[]}',
      '',
      'null',
      '{',
      `{"x":"${'a'.repeat(200_000)}"}`,
    )
    .map((body) => ({ body, kind: 'raw' })),
)

t.test('config payloads through PUT /admin/v1/configs/:appId', async (t) => {
  let ok = 0
  let rejected = 0
  await fc.assert(
    fc.asyncProperty(rawBody, fc.integer({ min: 0, max: 9 }), async ({ body }, n) => {
      const appId = `${p}-cfg-${n}`
      const before = await direct.get(`rateLimitConfig:${appId}`)
      const r = await put(appId, body)
      let parsed: unknown
      let parses = true
      try {
        parsed = JSON.parse(body)
      } catch {
        parses = false
      }
      const valid = parses && isValidConfig(parsed)
      if (r.statusCode >= 500) throw new Error(`5xx ${r.statusCode} for ${body.slice(0, 200)}: ${r.body}`)
      if (valid && body.length <= 65_536) {
        if (r.statusCode !== 200)
          throw new Error(`valid config refused (${r.statusCode}): ${body.slice(0, 300)} ${r.body}`)
        ok++
      } else {
        if (![400, 413, 415].includes(r.statusCode)) {
          throw new Error(
            `invalid config answered ${r.statusCode}: ${body.slice(0, 300)} ${r.body.slice(0, 300)}`,
          )
        }
        rejected++
        const after = await direct.get(`rateLimitConfig:${appId}`)
        if (after !== before) throw new Error('a refused config changed the stored value')
      }
      const stored = await direct.get(`rateLimitConfig:${appId}`)
      if (stored !== null && !isValidConfig(JSON.parse(stored)))
        throw new Error(`stored config fails the schema: ${stored}`)
    }),
    { numRuns: RUNS },
  )
  tried.configs = ok + rejected
  t.ok(ok > 0 && rejected > 0, `${ok} valid stored, ${rejected} refused with 4xx`)
  // nothing in Redis fails the schema
  const keys = (await direct.keys('rateLimitConfig:*')).filter((k) => k !== 'rateLimitConfig:updates')
  for (const k of keys) t.ok(isValidConfig(JSON.parse((await direct.get(k))!)), `${k} passes the schema`)
})

t.test('appIds in the admin path', async (t) => {
  const body = JSON.stringify({
    limits: [{ name: 'a', algorithm: 'fixed-window', limit: 5, windowMs: 1000 }],
  })
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.stringMatching(/^[A-Za-z0-9._:-]{1,140}$/)),
      async (appId) => {
        if (appId === '' || appId === '.' || appId === '..') return // a different route, not an appId
        const r = await put(appId, body)
        if (r.statusCode >= 500) throw new Error(`5xx for appId ${JSON.stringify(appId)}`)
        const expected = APP_ID_RE.test(appId) ? [200] : [400, 404, 414]
        if (!expected.includes(r.statusCode)) {
          throw new Error(`appId ${JSON.stringify(appId)}: ${r.statusCode} ${r.body.slice(0, 200)}`)
        }
      },
    ),
    { numRuns: RUNS },
  )
  tried.adminAppIds = RUNS
  t.pass(`${RUNS} path appIds`)
})

t.test('appId headers on a limited route', async (t) => {
  const header = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.constantFrom(
      '{x}',
      'a{b}c',
      '}{',
      '*',
      'a'.repeat(129),
      'a'.repeat(100_000),
      'a\u0000b',
      'a\tb',
      ' a',
      'é',
    ),
    fc.array(fc.stringMatching(/^[A-Za-z0-9]{1,8}$/), { minLength: 2, maxLength: 4 }),
  )
  await fc.assert(
    fc.asyncProperty(header, async (value) => {
      // CR / LF cannot be sent in a header value: node refuses to write them
      if (typeof value === 'string' && /[\r\n]/.test(value)) return
      if (Array.isArray(value) && value.some((v) => /[\r\n]/.test(v))) return
      const r = await g.gw.app.inject({
        method: 'GET',
        url: '/hostile',
        headers: { 'x-app-id': value },
        remoteAddress: nextAddr(),
      })
      if (r.statusCode >= 500) throw new Error(`5xx for x-app-id ${JSON.stringify(value).slice(0, 200)}`)
      const joined = Array.isArray(value) ? value.join(', ') : value
      // an empty header counts as no appId: the request is limited as ip:<address> (like omitting it)
      if (value === '') {
        if (![200, 429].includes(r.statusCode)) throw new Error(`empty x-app-id: ${r.statusCode}`)
        return
      }
      const validOne = typeof value === 'string' && APP_ID_RE.test(value)
      if (validOne && ![200, 429].includes(r.statusCode))
        throw new Error(`valid appId ${value}: ${r.statusCode}`)
      if (!validOne && !APP_ID_RE.test(joined) && r.statusCode !== 400) {
        throw new Error(
          `invalid x-app-id ${JSON.stringify(value).slice(0, 100)}: ${r.statusCode} ${r.body.slice(0, 200)}`,
        )
      }
    }),
    { numRuns: RUNS * 2 },
  )
  tried.headers = RUNS * 2
  const bad = (await direct.keys('rl:*')).filter((k) => {
    const m = /^rl:\{(.*?)\}/.exec(k)
    return !m || !(APP_ID_RE.test(m[1]!) || m[1]!.startsWith('ip:'))
  })
  t.same(bad, [], 'no counter key for an invalid appId')
})

t.test('admin tokens: malformed, huge, wrong key, algorithm confusion, expired', async (t) => {
  const get = (inst: typeof g, bearer: string | null, remoteAddress = nextAddr()) =>
    inst.gw.app.inject({
      method: 'GET',
      url: '/admin/v1/configs',
      headers: bearer === null ? {} : { authorization: bearer },
      remoteAddress,
    })
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const exp = Math.floor(Date.now() / 1000) + 600
  const rsaKey = privateKey
  const cases: [string, typeof g, string | null, number][] = [
    ['valid HS256', g, `Bearer ${await token({ scope: 'ratelimit:read' })}`, 200],
    ['no token', g, null, 401],
    ['not a bearer', g, `Basic ${Buffer.from('a:b').toString('base64')}`, 401],
    [
      'alg none',
      g,
      `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ scope: 'ratelimit:read', exp })}.`,
      401,
    ],
    ['alg NONE', g, `Bearer ${b64({ alg: 'NONE' })}.${b64({ scope: 'ratelimit:read', exp })}.`, 401],
    [
      'wrong secret',
      g,
      `Bearer ${await new SignJWT({ scope: 'ratelimit:read' })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode('x'.repeat(40)))}`,
      401,
    ],
    [
      'RS256 token to an HS256 gateway',
      g,
      `Bearer ${await new SignJWT({ scope: 'ratelimit:read' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(rsaKey)}`,
      401,
    ],
    [
      'HS512 with the right secret',
      g,
      `Bearer ${await new SignJWT({ scope: 'ratelimit:read' }).setProtectedHeader({ alg: 'HS512' }).setExpirationTime('5m').sign(key)}`,
      401,
    ],
    [
      'expired',
      g,
      `Bearer ${await new SignJWT({ scope: 'ratelimit:read' })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
        .sign(key)}`,
      401,
    ],
    [
      'no exp',
      g,
      `Bearer ${await new SignJWT({ scope: 'ratelimit:read' }).setProtectedHeader({ alg: 'HS256' }).sign(key)}`,
      401,
    ],
    [
      'no scope',
      g,
      `Bearer ${await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(key)}`,
      403,
    ],
    ['huge', g, `Bearer ${'a'.repeat(50_000)}.${'b'.repeat(50_000)}.c`, 401],
    [
      'valid RS256',
      gRsa,
      `Bearer ${await new SignJWT({ scope: 'ratelimit:read' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(rsaKey)}`,
      200,
    ],
    [
      'HS256 signed with the RSA public key PEM (confusion)',
      gRsa,
      `Bearer ${await new SignJWT({ scope: 'ratelimit:read' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(publicPem))}`,
      401,
    ],
    [
      'alg none to the RSA gateway',
      gRsa,
      `Bearer ${b64({ alg: 'none' })}.${b64({ scope: 'ratelimit:read', exp })}.`,
      401,
    ],
  ]
  for (const [name, inst, bearer, want] of cases) {
    const r = await get(inst, bearer)
    t.equal(r.statusCode, want, `${name}: ${want}`)
  }
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 500 }),
        fc.tuple(fc.base64String(), fc.base64String(), fc.base64String()).map((x) => x.join('.')),
        fc.jsonValue().map((j) => `${b64({ alg: 'HS256' })}.${b64(j)}.${b64('sig')}`),
      ),
      async (junk) => {
        if (/[\r\n]/.test(junk)) return
        const r = await get(g, `Bearer ${junk}`)
        if (r.statusCode !== 401)
          throw new Error(`junk token ${JSON.stringify(junk).slice(0, 100)}: ${r.statusCode}`)
      },
    ),
    { numRuns: RUNS },
  )
  tried.tokens = RUNS + cases.length
  // brute force from one address ends in 429 with Retry-After, never in a 5xx
  const one = nextAddr()
  const statuses = new Set<number>()
  let retryAfter: unknown
  for (let i = 0; i < 25; i++) {
    const r = await get(g, 'Bearer nope', one)
    statuses.add(r.statusCode)
    if (r.statusCode === 429) retryAfter = r.headers['retry-after']
  }
  t.ok(statuses.has(429), `brute force from one address is throttled (${[...statuses]})`)
  t.ok(Number(retryAfter) >= 1, 'with Retry-After')
})

t.test('flood of random appIds: metric labels and caches stay bounded', async (t) => {
  const N = FULL ? 20_000 : 3_000
  const heap0 = process.memoryUsage().heapUsed
  for (let i = 0; i < N; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, k) =>
        g.gw.app.inject({ method: 'GET', url: '/flood', headers: { 'x-app-id': `${p}-flood-${i + k}` } }),
      ),
    )
  }
  tried.flood = N
  const m = await g.metrics()
  const labels = labelValues(m, 'sluice_decisions_total', 'app_id')
  const special = [...labels].filter((l) => !l.startsWith(p))
  t.comment(`label values not from this suite: ${JSON.stringify(special)}`)
  // 1000 appIds, `_other` for the rest, and `_ip` for requests without an appId
  t.ok(labels.size <= 1002, `app_id label values ${labels.size} <= 1000 + _other + _ip`)
  t.ok(labels.has('_other'), 'the rest is counted as _other')
  ;(globalThis as { gc?: () => void }).gc?.()
  const grownMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20
  t.ok(grownMb < 64, `heap +${grownMb.toFixed(1)} MB after ${N} distinct appIds`)
})

t.test('POST /v1/check with hostile costs never refunds nor crashes', async (t) => {
  const app = `${p}-cost`
  await direct.set(
    `rateLimitConfig:${app}`,
    JSON.stringify({
      limits: [{ name: 'big', algorithm: 'fixed-window', limit: 1_000_000_000, windowMs: 3_600_000 }],
    }),
  )
  await direct.publish('rateLimitConfig:updates', app)
  const checkToken = await token({ scope: 'ratelimit:check' })
  const check = (body: unknown) =>
    g.gw.app.inject({
      method: 'POST',
      url: '/v1/check',
      headers: { authorization: `Bearer ${checkToken}`, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
      remoteAddress: nextAddr(),
    })
  const first = await check({ appId: app, cost: 1 })
  t.equal(first.statusCode, 200, 'a valid check is answered')
  let remaining = (first.json() as { limits: { remaining: number }[] }).limits[0]!.remaining
  const statuses = new Map<number, number>()
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.integer({ min: -1_000_000_000, max: 0 }),
        fc.constantFrom(
          -1,
          -0,
          0,
          0.5,
          1.5,
          -1e9,
          1e9 + 1,
          1e21,
          Number.MAX_SAFE_INTEGER,
          '-5',
          '1e3',
          ' 2',
          'x',
          null,
          true,
          [],
          {},
          [3],
        ),
        fc.double(),
        fc.integer({ min: 1, max: 5 }),
      ),
      async (cost) => {
        const r = await check({ appId: app, cost })
        statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1)
        if (r.statusCode !== 200 && r.statusCode !== 400) {
          throw new Error(`cost ${JSON.stringify(cost)}: ${r.statusCode} ${r.body.slice(0, 200)}`)
        }
        if (r.statusCode === 200) {
          const now = (r.json() as { limits: { remaining: number }[] }).limits[0]!.remaining
          if (now > remaining)
            throw new Error(`cost ${JSON.stringify(cost)} refunded: ${remaining} -> ${now}`)
          if (now === remaining) throw new Error(`cost ${JSON.stringify(cost)} admitted but consumed nothing`)
          remaining = now
        }
      },
    ),
    { numRuns: RUNS },
  )
  tried.costs = RUNS
  t.comment(`cost statuses: ${JSON.stringify([...statuses])}`)
  t.ok(statuses.has(400), 'non-positive / fractional costs are refused with 400')
})

t.test('configs written by hand that are invalid are ignored; the last good one keeps serving', async (t) => {
  const app = `${p}-byhand`
  const good = { limits: [{ name: 'good', algorithm: 'fixed-window', limit: 777, windowMs: 3_600_000 }] }
  await direct.set(`rateLimitConfig:${app}`, JSON.stringify(good))
  await direct.publish('rateLimitConfig:updates', app)
  const limitOf = async () => {
    const r = await g.gw.app.inject({ method: 'GET', url: '/byhand', headers: { 'x-app-id': app } })
    return ((r.json() as { limits?: { limit: number }[] }).limits ?? [])[0]?.limit
  }
  for (let i = 0; i < 20 && (await limitOf()) !== 777; i++) await new Promise((r) => setTimeout(r, 50))
  t.equal(await limitOf(), 777, 'the good config serves')
  const invalidBefore = g.events.get('ratelimit.config_invalid') ?? 0
  let tries = 0
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        rawBody
          .map((b) => b.body)
          .filter((b) => {
            try {
              return !isValidConfig(JSON.parse(b))
            } catch {
              return true
            }
          }),
        fc.string({ unit: 'binary', maxLength: 100 }),
      ),
      async (garbage) => {
        tries++
        await direct.set(`rateLimitConfig:${app}`, garbage)
        await direct.publish('rateLimitConfig:updates', app)
        await new Promise((r) => setTimeout(r, 5))
        const r = await g.gw.app.inject({ method: 'GET', url: '/byhand', headers: { 'x-app-id': app } })
        if (r.statusCode >= 500) throw new Error(`5xx after garbage config ${garbage.slice(0, 100)}`)
        const limit = ((r.json() as { limits?: { limit: number }[] }).limits ?? [])[0]?.limit
        if (r.statusCode === 200 && limit !== 777) {
          throw new Error(
            `garbage config ${JSON.stringify(garbage.slice(0, 100))} changed the limit to ${limit}`,
          )
        }
      },
    ),
    { numRuns: Math.min(RUNS, 60) },
  )
  tried.handWritten = tries
  const invalid = (g.events.get('ratelimit.config_invalid') ?? 0) - invalidBefore
  t.ok(invalid >= 1, `ratelimit.config_invalid logged (${invalid} lines for ${tries} garbage values)`)
  const m = await g.metrics()
  t.ok(
    (m.find((s) => s.name === 'sluice_config_cache_total' && s.labels.result === 'invalid')?.value ?? 0) >= 1,
    'sluice_config_cache_total{result="invalid"} counts it',
  )
})

t.test('X-Forwarded-For cannot move an anonymous client to another bucket (TRUST_PROXY=false)', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.ipV4(), fc.ipV6(), async (v4, v6) => {
      const r = await g.gw.app.inject({
        method: 'GET',
        url: '/anon',
        headers: { 'x-forwarded-for': `${v4}, ${v6}`, 'x-real-ip': v4 },
        remoteAddress: '192.0.2.77',
      })
      if (r.statusCode >= 500) throw new Error(`5xx for XFF ${v4}`)
    }),
    { numRuns: 50 },
  )
  const subjects = new Set(
    (await direct.keys('rl:{ip:*'))
      .map((k) => /^rl:\{(ip:[^}]*)\}/.exec(k)?.[1])
      .filter((s) => s !== undefined),
  )
  t.ok(subjects.has('ip:192.0.2.77'), 'the socket address is the subject')
  const spoofed = [...subjects].filter(
    (s) => s !== 'ip:192.0.2.77' && !s.startsWith('ip:10.') && s !== 'ip:127.0.0.1',
  )
  t.same(spoofed, [], 'no bucket named after a forwarded address')
})

t.test('inputs tried', async (t) => {
  t.ok(Object.keys(tried).length >= 7, `inputs tried: ${JSON.stringify(tried)}`)
})
