import { createHash } from 'node:crypto'
import { type Static, Type } from '@sinclair/typebox'
import { ValueErrorType } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'
import { ConfigValidationError, type ConfigValidationIssue } from '../errors.js'
import { ALGORITHMS, type Algorithm, type FailMode, type LimitSpec, type RateLimitConfig } from '../types.js'

/** `name` of a limit: part of every counter key. */
export const LIMIT_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,31}$'
/** An appId (contract section 5). */
export const APP_ID_PATTERN = '^[A-Za-z0-9._:-]{1,128}$'
const APP_ID_RE = new RegExp(APP_ID_PATTERN)

/** Bounds of config schema version 1 (contract section 4). */
export const CONFIG_BOUNDS = Object.freeze({
  minLimits: 1,
  maxLimits: 10,
  minLimit: 1,
  maxLimit: 1_000_000_000,
  maxSlidingLogLimit: 10_000,
  minWindowMs: 1,
  maxWindowMs: 2_678_400_000,
})

export const FAIL_MODES: readonly FailMode[] = ['open', 'closed', 'local']

/** TypeBox schema of one limit. */
export const LimitSpecSchema = Type.Object(
  {
    name: Type.String({
      pattern: LIMIT_NAME_PATTERN,
      description: 'Unique within the config; part of the counter key',
    }),
    algorithm: Type.Union(
      ALGORITHMS.map((a) => Type.Literal(a)),
      { description: 'sliding-log (exact, limit <= 10000), sliding-window, token-bucket, fixed-window' },
    ),
    limit: Type.Integer({
      minimum: CONFIG_BOUNDS.minLimit,
      maximum: CONFIG_BOUNDS.maxLimit,
      description: 'Units admitted per window (token-bucket: capacity)',
    }),
    windowMs: Type.Integer({
      minimum: CONFIG_BOUNDS.minWindowMs,
      maximum: CONFIG_BOUNDS.maxWindowMs,
      description: 'Window length in milliseconds (at most 31 days)',
    }),
  },
  { additionalProperties: false, $id: 'SluiceLimitSpec' },
)

/**
 * TypeBox schema of a rate-limit config, version 1 (contract section 4). Unknown fields are rejected
 * everywhere. Two rules JSON Schema cannot express are checked in code by `validateConfig()`:
 * limit names are unique, and a `sliding-log` limit is at most 10000.
 */
export const ConfigSchema = Type.Object(
  {
    limits: Type.Array(LimitSpecSchema, {
      minItems: CONFIG_BOUNDS.minLimits,
      maxItems: CONFIG_BOUNDS.maxLimits,
      description: 'A request is admitted only if every limit admits it',
    }),
    failMode: Type.Optional(
      Type.Union(
        FAIL_MODES.map((m) => Type.Literal(m)),
        { default: 'local', description: 'What happens when Redis fails: open, closed (503) or local' },
      ),
    ),
    shadow: Type.Optional(Type.Boolean({ default: false, description: 'Evaluate and count, never block' })),
  },
  { additionalProperties: false, $id: 'SluiceRateLimitConfig' },
)

/** The shape accepted as input (defaults not yet applied). */
export type ConfigInput = Static<typeof ConfigSchema>

/**
 * Used when no default config is given: one sliding-window limit of 600 requests per 60 s
 * (10/s on average, bursts allowed within the minute), failMode `local`, not shadowed.
 */
export const BUILT_IN_DEFAULT_CONFIG: RateLimitConfig = Object.freeze({
  limits: Object.freeze([
    Object.freeze({ name: 'default', algorithm: 'sliding-window', limit: 600, windowMs: 60_000 } as const),
  ]),
  failMode: 'local',
  shadow: false,
})

/** True when `appId` matches `APP_ID_PATTERN`. */
export function isValidAppId(appId: unknown): appId is string {
  return typeof appId === 'string' && APP_ID_RE.test(appId)
}

/** `/limits/1/windowMs` -> `limits[1].windowMs`; '' -> '(root)'. */
function fieldOf(pointer: string): string {
  if (pointer === '' || pointer === '/') return '(root)'
  let out = ''
  for (const raw of pointer.slice(1).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (/^\d+$/.test(part)) out += `[${part}]`
    else out += out === '' ? part : `.${part}`
  }
  return out
}

function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

/**
 * Every rule `value` breaks, each with the field (`limits[1].windowMs`) and a message naming the
 * rule (`must be >= 1`). Empty when the value is a valid config. Never throws.
 */
export function validateConfig(value: unknown): ConfigValidationIssue[] {
  const issues: ConfigValidationIssue[] = []
  const seen = new Set<string>()
  const add = (path: string, message: string): void => {
    const k = `${path}\u0000${message}`
    if (seen.has(k)) return
    seen.add(k)
    issues.push({ path, message })
  }
  for (const e of Value.Errors(ConfigSchema, value)) {
    const schema = e.schema as Record<string, unknown>
    const path = fieldOf(e.path)
    // A missing field is reported once, as "is required", not again as "must be a string".
    if (
      e.value === undefined &&
      e.type !== ValueErrorType.ObjectRequiredProperty &&
      e.type !== ValueErrorType.ObjectAdditionalProperties
    )
      continue
    const message = describeError(e.type, schema, e.value)
    if (message !== null) add(path, message)
  }
  // Rules JSON Schema cannot say: unique names, the sliding-log cap.
  if (value !== null && typeof value === 'object' && Array.isArray((value as { limits?: unknown }).limits)) {
    const limits = (value as { limits: unknown[] }).limits
    const names = new Map<string, number>()
    limits.forEach((l, i) => {
      if (l === null || typeof l !== 'object') return
      const { name, algorithm, limit } = l as Record<string, unknown>
      if (typeof name === 'string') {
        const first = names.get(name)
        if (first !== undefined)
          add(`limits[${i}].name`, `must be unique ("${name}" is also limits[${first}].name)`)
        else names.set(name, i)
      }
      if (
        algorithm === 'sliding-log' &&
        typeof limit === 'number' &&
        limit > CONFIG_BOUNDS.maxSlidingLogLimit
      ) {
        add(`limits[${i}].limit`, `must be <= ${CONFIG_BOUNDS.maxSlidingLogLimit} for algorithm sliding-log`)
      }
    })
  }
  return issues
}

function describeError(type: number, schema: Record<string, unknown>, value: unknown): string | null {
  const name = ValueErrorTypeName[type]
  switch (name) {
    case 'ObjectRequiredProperty':
      return 'is required'
    case 'ObjectAdditionalProperties':
      return 'is not allowed (unknown field)'
    case 'Object':
      return `must be an object (got ${typeName(value)})`
    case 'Array':
      return `must be an array (got ${typeName(value)})`
    case 'ArrayMinItems':
      return `must have at least ${String(schema.minItems)} item(s)`
    case 'ArrayMaxItems':
      return `must have at most ${String(schema.maxItems)} items`
    case 'String':
      return `must be a string (got ${typeName(value)})`
    case 'StringPattern':
      return `must match ${String(schema.pattern)}`
    case 'Integer':
      return `must be an integer (got ${typeName(value) === 'number' ? String(value) : typeName(value)})`
    case 'Number':
      return `must be a number (got ${typeName(value)})`
    case 'IntegerMinimum':
    case 'NumberMinimum':
      return `must be >= ${String(schema.minimum)}`
    case 'IntegerMaximum':
    case 'NumberMaximum':
      return `must be <= ${String(schema.maximum)}`
    case 'Boolean':
      return `must be a boolean (got ${typeName(value)})`
    case 'Union': {
      const anyOf = (schema.anyOf as { const?: unknown }[] | undefined) ?? []
      const options = anyOf.map((s) => String(s.const)).join(', ')
      return `must be one of ${options}`
    }
    case 'Literal':
      // Reported through the enclosing Union.
      return null
    default:
      return 'is invalid'
  }
}

// Names of TypeBox's ValueErrorType members by numeric value (the enum is numeric).
const ValueErrorTypeName: Record<number, string> = Object.fromEntries(
  Object.entries(ValueErrorType)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k]),
)

/**
 * Validate `value` and return it as a `RateLimitConfig` with defaults applied (`failMode: 'local'`,
 * `shadow: false`). Throws `ConfigValidationError` whose message names `source`, the field and the
 * rule: `appId=foo: limits[1].windowMs must be >= 1`.
 */
export function parseConfig(value: unknown, source: string): RateLimitConfig {
  const issues = validateConfig(value)
  if (issues.length > 0) throw new ConfigValidationError(source, issues)
  const v = value as ConfigInput
  return Object.freeze({
    limits: Object.freeze(
      v.limits.map(
        (l): LimitSpec =>
          Object.freeze({
            name: l.name,
            algorithm: l.algorithm as Algorithm,
            limit: l.limit,
            windowMs: l.windowMs,
          }),
      ),
    ),
    failMode: (v.failMode ?? 'local') as FailMode,
    shadow: v.shadow ?? false,
  })
}

/** `JSON.parse(raw)` then `parseConfig`; a value that is not JSON throws `ConfigValidationError` too. */
export function parseConfigJson(raw: string, source: string): RateLimitConfig {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch (err) {
    throw new ConfigValidationError(source, [
      { path: '(root)', message: `is not valid JSON (${(err as Error).message})` },
    ])
  }
  return parseConfig(value, source)
}

/**
 * The canonical JSON stored in Redis: fixed key order (`limits` [name, algorithm, limit, windowMs],
 * `failMode`, `shadow`), defaults applied, no whitespace. Equal configs serialize to equal strings.
 */
export function serializeConfig(config: RateLimitConfig): string {
  return JSON.stringify({
    limits: config.limits.map((l) => ({
      name: l.name,
      algorithm: l.algorithm,
      limit: l.limit,
      windowMs: l.windowMs,
    })),
    failMode: config.failMode,
    shadow: config.shadow,
  })
}

/**
 * Strong ETag of a stored value: `"` + SHA-1 hex of the raw UTF-8 string + `"`. The admin API computes
 * the same inside Lua with `redis.sha1hex(value)`: keep the two definitions identical.
 */
export function etagOf(raw: string): string {
  return `"${createHash('sha1').update(raw, 'utf8').digest('hex')}"`
}
