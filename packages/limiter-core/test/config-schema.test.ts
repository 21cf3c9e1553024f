import { createHash } from 'node:crypto'
import { Value } from '@sinclair/typebox/value'
import fc from 'fast-check'
import t from 'tap'
import {
  APP_ID_PATTERN,
  BUILT_IN_DEFAULT_CONFIG,
  ConfigSchema,
  etagOf,
  isValidAppId,
  parseConfig,
  parseConfigJson,
  serializeConfig,
  validateConfig,
} from '../src/config/index.js'
import { ConfigValidationError } from '../src/errors.js'

const ok = (over: Record<string, unknown> = {}) => ({
  limits: [{ name: 'per-second', algorithm: 'sliding-log', limit: 10, windowMs: 1000 }],
  ...over,
})
const lim = (over: Record<string, unknown>) => ({
  name: 'a',
  algorithm: 'fixed-window',
  limit: 5,
  windowMs: 1000,
  ...over,
})

t.test('the contract example is valid and defaults are applied', async (t) => {
  const c = parseConfig(
    {
      limits: [
        { name: 'per-second', algorithm: 'sliding-log', limit: 10, windowMs: 1000 },
        { name: 'per-day', algorithm: 'sliding-window', limit: 50000, windowMs: 86400000 },
      ],
      failMode: 'local',
      shadow: false,
    },
    'x',
  )
  t.equal(c.limits.length, 2)
  const d = parseConfig(ok(), 'x')
  t.equal(d.failMode, 'local')
  t.equal(d.shadow, false)
  t.same(validateConfig(BUILT_IN_DEFAULT_CONFIG), [])
  t.ok(Value.Check(ConfigSchema, ok()))
})

const cases: [string, unknown, string, string][] = [
  ['not an object', 5, '(root)', 'must be an object (got number)'],
  ['limits missing', {}, 'limits', 'is required'],
  ['limits not an array', { limits: 'x' }, 'limits', 'must be an array (got string)'],
  ['no limits', { limits: [] }, 'limits', 'must have at least 1 item(s)'],
  [
    '11 limits',
    { limits: Array.from({ length: 11 }, (_, i) => lim({ name: `l${i}` })) },
    'limits',
    'must have at most 10 items',
  ],
  [
    'name missing',
    { limits: [{ algorithm: 'fixed-window', limit: 1, windowMs: 1 }] },
    'limits[0].name',
    'is required',
  ],
  [
    'name pattern',
    { limits: [lim({ name: 'Bad' })] },
    'limits[0].name',
    'must match ^[a-z0-9][a-z0-9_-]{0,31}$',
  ],
  [
    'name too long',
    { limits: [lim({ name: 'a'.repeat(33) })] },
    'limits[0].name',
    'must match ^[a-z0-9][a-z0-9_-]{0,31}$',
  ],
  ['name not string', { limits: [lim({ name: 3 })] }, 'limits[0].name', 'must be a string (got number)'],
  [
    'duplicate names',
    { limits: [lim({}), lim({})] },
    'limits[1].name',
    'must be unique ("a" is also limits[0].name)',
  ],
  [
    'algorithm',
    { limits: [lim({ algorithm: 'leaky' })] },
    'limits[0].algorithm',
    'must be one of sliding-log, sliding-window, token-bucket, fixed-window',
  ],
  ['limit 0', { limits: [lim({ limit: 0 })] }, 'limits[0].limit', 'must be >= 1'],
  ['limit > 1e9', { limits: [lim({ limit: 1e9 + 1 })] }, 'limits[0].limit', 'must be <= 1000000000'],
  ['limit float', { limits: [lim({ limit: 1.5 })] }, 'limits[0].limit', 'must be an integer (got 1.5)'],
  ['limit string', { limits: [lim({ limit: '5' })] }, 'limits[0].limit', 'must be an integer (got string)'],
  [
    'sliding-log cap',
    { limits: [lim({ algorithm: 'sliding-log', limit: 10001 })] },
    'limits[0].limit',
    'must be <= 10000 for algorithm sliding-log',
  ],
  [
    'windowMs 0',
    { limits: [lim({}), lim({ name: 'b', windowMs: 0 })] },
    'limits[1].windowMs',
    'must be >= 1',
  ],
  [
    'windowMs > 31 d',
    { limits: [lim({ windowMs: 2678400001 })] },
    'limits[0].windowMs',
    'must be <= 2678400000',
  ],
  ['failMode', ok({ failMode: 'maybe' }), 'failMode', 'must be one of open, closed, local'],
  ['shadow', ok({ shadow: 'yes' }), 'shadow', 'must be a boolean (got string)'],
  ['unknown root field', ok({ version: 1 }), 'version', 'is not allowed (unknown field)'],
  [
    'unknown limit field',
    { limits: [lim({ burst: 3 })] },
    'limits[0].burst',
    'is not allowed (unknown field)',
  ],
]

t.test('every rule has its message, naming source, field and rule', async (t) => {
  for (const [label, value, path, message] of cases) {
    const issues = validateConfig(value)
    t.ok(
      issues.some((i) => i.path === path && i.message === message),
      `${label}: ${JSON.stringify(issues)}`,
    )
    t.throws(() => parseConfig(value, 'appId=foo'), ConfigValidationError)
    try {
      parseConfig(value, 'appId=foo')
    } catch (err) {
      const e = err as ConfigValidationError
      t.equal(e.code, 'SLUICE_ERR_CONFIG_INVALID')
      t.equal(e.statusCode, 400)
      t.match(e.message, `appId=foo: `)
      t.ok(e.message.includes(`${path} ${message}`), e.message)
      t.ok(e.errors.length >= 1)
    }
  }
  t.throws(() => parseConfig({ limits: [lim({}), lim({ name: 'b', windowMs: 0 })] }, 'appId=foo'), {
    message: 'appId=foo: limits[1].windowMs must be >= 1',
  })
})

t.test('boundaries are accepted', async (t) => {
  t.same(validateConfig({ limits: [lim({ limit: 1e9, windowMs: 2678400000 })] }), [])
  t.same(validateConfig({ limits: [lim({ algorithm: 'sliding-log', limit: 10000, windowMs: 1 })] }), [])
  t.same(validateConfig({ limits: Array.from({ length: 10 }, (_, i) => lim({ name: `l${i}` })) }), [])
  t.same(validateConfig({ limits: [lim({ name: 'a'.repeat(32) })] }), [])
  t.same(validateConfig({ limits: [lim({ name: '0_-x' })] }), [])
  for (const m of ['open', 'closed', 'local']) t.same(validateConfig(ok({ failMode: m, shadow: true })), [])
})

t.test('parseConfigJson: not JSON is a validation error', async (t) => {
  t.throws(() => parseConfigJson('{nope', 'appId=foo'), {
    code: 'SLUICE_ERR_CONFIG_INVALID',
    message: /^appId=foo: \(root\) is not valid JSON/,
  })
  t.same(parseConfigJson(JSON.stringify(ok()), 'x').limits[0]?.name, 'per-second')
})

t.test('serializeConfig is canonical and round-trips', async (t) => {
  const a = parseConfig(
    { shadow: true, limits: [{ windowMs: 5, limit: 2, algorithm: 'token-bucket', name: 'x' }] },
    's',
  )
  const raw = serializeConfig(a)
  t.equal(
    raw,
    '{"limits":[{"name":"x","algorithm":"token-bucket","limit":2,"windowMs":5}],"failMode":"local","shadow":true}',
  )
  t.same(parseConfigJson(raw, 's'), a)
})

t.test('etagOf is the quoted sha1 hex of the raw string', async (t) => {
  const raw = '{"limits":[]}é'
  t.equal(etagOf(raw), `"${createHash('sha1').update(Buffer.from(raw, 'utf8')).digest('hex')}"`)
  t.match(etagOf('x'), /^"[0-9a-f]{40}"$/)
})

t.test('appIds', async (t) => {
  t.equal(APP_ID_PATTERN, '^[A-Za-z0-9._:-]{1,128}$')
  for (const id of ['a', 'A.b_c:d-1', 'x'.repeat(128), 'default']) t.ok(isValidAppId(id), id)
  for (const id of ['', 'x'.repeat(129), 'a b', 'a/b', 'é', 'a{b}', 5, null])
    t.notOk(isValidAppId(id), String(id))
})

const limitArb = fc.record({
  name: fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,31}$/), fc.string()),
  algorithm: fc.oneof(
    fc.constantFrom('sliding-log', 'sliding-window', 'token-bucket', 'fixed-window'),
    fc.string(),
  ),
  limit: fc.oneof(fc.integer({ min: -5, max: 2e9 }), fc.double(), fc.constant(10001)),
  windowMs: fc.oneof(fc.integer({ min: -5, max: 3e9 }), fc.double()),
})
const configArb = fc.record(
  {
    limits: fc.array(limitArb, { minLength: 0, maxLength: 12 }),
    failMode: fc.oneof(fc.constantFrom('open', 'closed', 'local'), fc.string()),
    shadow: fc.oneof(fc.boolean(), fc.string()),
  },
  { requiredKeys: ['limits'] },
)

/** An independent statement of the rules, to compare with. */
function isValidByHand(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const o = v as Record<string, unknown>
  if (Object.keys(o).some((k) => !['limits', 'failMode', 'shadow'].includes(k))) return false
  if ('failMode' in o && !['open', 'closed', 'local'].includes(o.failMode as string)) return false
  if ('shadow' in o && typeof o.shadow !== 'boolean') return false
  const ls = o.limits
  if (!Array.isArray(ls) || ls.length < 1 || ls.length > 10) return false
  const names = new Set<string>()
  for (const l of ls as Record<string, unknown>[]) {
    if (Object.keys(l).some((k) => !['name', 'algorithm', 'limit', 'windowMs'].includes(k))) return false
    if (typeof l.name !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,31}$/.test(l.name) || names.has(l.name))
      return false
    names.add(l.name)
    if (!['sliding-log', 'sliding-window', 'token-bucket', 'fixed-window'].includes(l.algorithm as string))
      return false
    const { limit, windowMs } = l as { limit: number; windowMs: number }
    if (!Number.isInteger(limit) || limit < 1 || limit > 1e9) return false
    if (l.algorithm === 'sliding-log' && limit > 10000) return false
    if (!Number.isInteger(windowMs) || windowMs < 1 || windowMs > 2678400000) return false
  }
  return true
}

t.test('property: never crashes, accepts exactly the valid configs', async (t) => {
  fc.assert(
    fc.property(configArb, (v) => {
      const issues = validateConfig(v)
      const valid = isValidByHand(v)
      if (valid !== (issues.length === 0))
        throw new Error(`disagree on ${JSON.stringify(v)}: ${JSON.stringify(issues)}`)
      if (valid) {
        const c = parseConfig(v, 's')
        if (serializeConfig(parseConfigJson(serializeConfig(c), 's')) !== serializeConfig(c))
          throw new Error('round trip')
      } else if (issues.some((i) => typeof i.path !== 'string' || i.message.length === 0)) {
        throw new Error('empty issue')
      }
    }),
    { numRuns: 2000 },
  )
  fc.assert(
    fc.property(fc.anything(), (v) => {
      validateConfig(v)
      return true
    }),
    { numRuns: 1000 },
  )
  fc.assert(
    fc.property(fc.string(), (raw) => {
      try {
        parseConfigJson(raw, 's')
      } catch (err) {
        if (!(err instanceof ConfigValidationError)) throw err
      }
      return true
    }),
  )
  t.pass('properties hold')
})

t.test('the config error codes have rows in docs/errors.md (limiter-core section)', async (t) => {
  const { readFile } = await import('node:fs/promises')
  const md = await readFile(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
  const start = md.indexOf('## @sluice/limiter-core')
  const section = md.slice(start, md.indexOf('\n## ', start + 1))
  const { InvalidAppIdError } = await import('../src/errors.js')
  for (const e of [
    new ConfigValidationError('s', [{ path: 'p', message: 'm' }]),
    new InvalidAppIdError('x y'),
  ]) {
    const row = section.split('\n').find((l) => l.startsWith(`| \`${e.code}\` |`))
    t.ok(row, `${e.code} documented`)
    t.match(row, `| ${e.statusCode} |`)
  }
})
