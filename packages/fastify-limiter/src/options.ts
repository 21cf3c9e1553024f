/**
 * Plugin and route options: their types (with TSDoc), validation at registration, and the one
 * `resolveOptions()` that merges global and per-route options.
 */
import {
  type CompiledPolicy,
  type ConfigResolver,
  compilePolicy,
  type Decision,
  type LimitSpec,
  parseConfig,
  type RateLimitConfig,
  type ResolvedConfig,
  type Store,
} from '@sluice/limiter-core'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { Registry } from 'prom-client'
import type { BreakerOptions } from './breaker.js'
import { PluginOptionsError } from './errors.js'
import type { DecisionOutcome } from './metrics.js'

/** What a check produced: what was decided, by which config, for which subject. */
export interface RateLimitInfo {
  /** The outcome (the `decision` label of `sluice_decisions_total`). */
  readonly outcome: DecisionOutcome
  /** True when the request is let through (`allowed`, `shadow_blocked`, `fail_open`, admitted `fail_local`). */
  readonly allowed: boolean
  /** The store's decision; null when no decision was made (`fail_open`, `fail_closed`). */
  readonly decision: Decision | null
  /** The config that decided. */
  readonly resolved: ResolvedConfig
  /** The policy that decided (the config's, or the route's own `limits`). */
  readonly policy: CompiledPolicy
  /** The calling application, or null for a request without one (decided as `ip:<address>`). */
  readonly appId: string | null
  /** The counter subject: the appId, or `ip:<address>`. */
  readonly subject: string
  /** Units this request spent (or tried to). */
  readonly cost: number
}

/** Per-route rate-limit options (`config: { rateLimit: … }` of a route); `false` exempts the route. */
export interface RouteRateLimitOptions {
  /**
   * Limits of this route, replacing the app's configured limits for requests to it (the app's
   * `failMode` and `shadow` still apply). Validated at registration like a config's `limits`.
   * Counters are keyed by limit name, algorithm and window: give route limits their own names
   * unless they are meant to share a budget with the config's limits.
   */
  readonly limits?: readonly LimitSpec[]
  /** Units one request to this route spends (integer >= 1). Default: the plugin's `cost`. */
  readonly cost?: number
}

/** Custom reply for a blocked request; the default sends the contract's 429 JSON body. */
export type OnBlocked = (
  request: FastifyRequest,
  reply: FastifyReply,
  info: RateLimitInfo,
) => void | Promise<void>

/** Options of `@sluice/fastify-limiter`. Validated once, at registration. */
export interface SluiceLimiterOptions {
  /**
   * ioredis client (standalone `Redis` or `Cluster`) the plugin decides and reads configs through,
   * e.g. `fastify.redis` from @fastify/redis. Never closed by the plugin. It should be created with
   * `enableOfflineQueue: false` and a `commandTimeout` (see `createRedisClient` of the core).
   */
  readonly redis?: Redis | Cluster
  /** A store to decide with (wins over `redis` for decisions). Never closed by the plugin. */
  readonly store?: Store
  /** Config resolver (appId -> config). Default: one built from `redis`, or a static one. Never closed by the plugin. */
  readonly resolver?: ConfigResolver
  /** One static config deciding every subject (for users without per-app configs). Excludes `resolver`. */
  readonly config?: RateLimitConfig
  /**
   * Default config for the resolver the plugin builds (written to Redis at start when absent), and
   * the config used when no config can be read at all. Default: the core's `BUILT_IN_DEFAULT_CONFIG`.
   */
  readonly defaultConfig?: RateLimitConfig
  /** How long a cached config is served without re-reading Redis (ms). Default 5000. */
  readonly cacheTtlMs?: number
  /** Per-decision store budget (ms): past it the decision is a store failure. Default 100. */
  readonly timeoutMs?: number
  /**
   * With `redis`: batch the decisions of one event-loop tick into one Redis script call per Cluster
   * hash slot (the core's `RedisStore` `batch` option; same exactness, fewer round trips). `false`:
   * one EVALSHA per decision. `{ maxBatch }` caps a call (default 128). Default `true`.
   */
  readonly batch?: boolean | { readonly maxBatch?: number }
  /** Request header naming the calling application. Default `x-app-id`. */
  readonly appIdHeader?: string
  /**
   * Derive the appId from the request instead of `appIdHeader`. Return undefined/null/'' for
   * "no appId" (the request is then decided as `ip:<address>` by the default config).
   */
  readonly keyGenerator?: (request: FastifyRequest) => string | null | undefined
  /** `default`: an appId without a config of its own uses the default config; `reject`: 403. Default `default`. */
  readonly unknownAppPolicy?: 'default' | 'reject'
  /** Units one request spends unless its route says otherwise (integer >= 1). Default 1. */
  readonly cost?: number
  /** Send `RateLimit-Policy` / `RateLimit` (and `Retry-After` on 429). Default true. */
  readonly headers?: boolean
  /** Also send `X-RateLimit-Limit` / `-Remaining` / `-Reset` of the tightest limit. Default true. */
  readonly legacyHeaders?: boolean
  /** Custom reply for blocked requests (it must send a reply). Default: the 429 JSON body. */
  readonly onBlocked?: OnBlocked
  /** Entries of the blocked-key cache (LRU); 0 disables it. Default 10000. */
  readonly blockedCacheSize?: number
  /** Circuit breaker in front of the store; `false` disables it. Default `{ failureThreshold: 5, cooldownMs: 1000 }`. */
  readonly breaker?: BreakerOptions | false
  /** Registry for the metrics. Default: fastify-metrics' registry when `fastify.metrics` exists, else prom-client's default. */
  readonly registry?: Registry
  /** Distinct `app_id` label values before the rest are counted as `_other`. Default 1000. */
  readonly maxAppIdLabels?: number
  /** Local clock (ms) of the breaker and the blocked-key cache; for tests. Default `Date.now`. */
  readonly clock?: () => number
}

/** Options after validation, defaults applied. */
export interface NormalizedOptions {
  readonly redis: Redis | Cluster | undefined
  readonly store: Store | undefined
  readonly resolver: ConfigResolver | undefined
  readonly config: RateLimitConfig | undefined
  readonly defaultConfig: RateLimitConfig | undefined
  readonly cacheTtlMs: number
  readonly timeoutMs: number
  readonly batch: boolean | { readonly maxBatch?: number }
  readonly appIdHeader: string
  readonly keyGenerator: ((request: FastifyRequest) => string | null | undefined) | undefined
  readonly unknownAppPolicy: 'default' | 'reject'
  readonly cost: number
  readonly headers: boolean
  readonly legacyHeaders: boolean
  readonly onBlocked: OnBlocked | undefined
  readonly blockedCacheSize: number
  readonly breaker: BreakerOptions | false
  readonly registry: Registry | undefined
  readonly maxAppIdLabels: number
  readonly clock: () => number
}

/** Default of the `batch` option (chosen by the benchmark: docs/benchmarks.md). */
export const DEFAULT_BATCH = true

const KNOWN = new Set([
  'redis',
  'store',
  'resolver',
  'config',
  'defaultConfig',
  'cacheTtlMs',
  'timeoutMs',
  'batch',
  'appIdHeader',
  'keyGenerator',
  'unknownAppPolicy',
  'cost',
  'headers',
  'legacyHeaders',
  'onBlocked',
  'blockedCacheSize',
  'breaker',
  'registry',
  'maxAppIdLabels',
  'clock',
])

const fail = (message: string): never => {
  throw new PluginOptionsError(`@sluice/fastify-limiter: ${message}`)
}

function int(v: unknown, name: string, min: number, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    fail(`option "${name}" must be an integer >= ${min}`)
  return v as number
}

function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') fail(`option "${name}" must be a boolean`)
  return v as boolean
}

function fn<T>(v: unknown, name: string): T | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'function') fail(`option "${name}" must be a function`)
  return v as T
}

function isRedisLike(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof (v as { evalsha?: unknown }).evalsha === 'function'
}

/** Validate the plugin options once; the message of a bad option names it. */
export function normalizeOptions(raw: SluiceLimiterOptions | undefined): NormalizedOptions {
  const o = (raw ?? {}) as Record<string, unknown>
  if (typeof o !== 'object' || o === null) fail('options must be an object')
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) fail(`unknown option "${k}"`)
  if (o['redis'] !== undefined && !isRedisLike(o['redis']))
    fail('option "redis" must be an ioredis Redis or Cluster client')
  const store = o['store'] as Store | undefined
  if (store !== undefined && (typeof store !== 'object' || typeof store.decide !== 'function')) {
    fail('option "store" must be a Store (with decide() and close())')
  }
  const resolver = o['resolver'] as ConfigResolver | undefined
  if (resolver !== undefined && (typeof resolver !== 'object' || typeof resolver.resolve !== 'function')) {
    fail('option "resolver" must be a ConfigResolver (with resolve())')
  }
  if (resolver !== undefined && o['config'] !== undefined)
    fail('options "resolver" and "config" exclude each other')
  const config = o['config'] === undefined ? undefined : configOption(o['config'], 'config')
  const defaultConfig =
    o['defaultConfig'] === undefined ? undefined : configOption(o['defaultConfig'], 'defaultConfig')
  const appIdHeader = o['appIdHeader'] ?? 'x-app-id'
  if (typeof appIdHeader !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(appIdHeader)) {
    fail('option "appIdHeader" must be an HTTP header name')
  }
  const unknownAppPolicy = o['unknownAppPolicy'] ?? 'default'
  if (unknownAppPolicy !== 'default' && unknownAppPolicy !== 'reject') {
    fail('option "unknownAppPolicy" must be "default" or "reject"')
  }
  if (
    unknownAppPolicy === 'reject' &&
    (config !== undefined || (resolver === undefined && o['redis'] === undefined))
  ) {
    fail(
      'option "unknownAppPolicy: reject" needs per-app configs ("redis" or "resolver"), not a static config',
    )
  }
  const batch = o['batch'] ?? DEFAULT_BATCH
  if (typeof batch !== 'boolean') {
    if (typeof batch !== 'object' || batch === null) fail('option "batch" must be a boolean or { maxBatch }')
    const b = batch as Record<string, unknown>
    for (const k of Object.keys(b)) if (k !== 'maxBatch') fail(`unknown option "batch.${k}"`)
    int(b['maxBatch'], 'batch.maxBatch', 1, 128)
  }
  const breaker = o['breaker'] ?? {}
  if (breaker !== false) {
    if (typeof breaker !== 'object' || breaker === null) fail('option "breaker" must be an object or false')
    const b = breaker as Record<string, unknown>
    for (const k of Object.keys(b)) {
      if (k !== 'failureThreshold' && k !== 'cooldownMs') fail(`unknown option "breaker.${k}"`)
    }
    int(b['failureThreshold'], 'breaker.failureThreshold', 1, 5)
    int(b['cooldownMs'], 'breaker.cooldownMs', 1, 1000)
  }
  const registry = o['registry']
  if (
    registry !== undefined &&
    (typeof registry !== 'object' || registry === null || !('getSingleMetric' in registry))
  ) {
    fail('option "registry" must be a prom-client Registry')
  }
  return {
    redis: o['redis'] as Redis | Cluster | undefined,
    store,
    resolver,
    config,
    defaultConfig,
    cacheTtlMs: int(o['cacheTtlMs'], 'cacheTtlMs', 0, 5000),
    timeoutMs: int(o['timeoutMs'], 'timeoutMs', 1, 100),
    batch: batch as boolean | { readonly maxBatch?: number },
    appIdHeader: (appIdHeader as string).toLowerCase(),
    keyGenerator: fn(o['keyGenerator'], 'keyGenerator'),
    unknownAppPolicy: unknownAppPolicy as 'default' | 'reject',
    cost: int(o['cost'], 'cost', 1, 1),
    headers: bool(o['headers'], 'headers', true),
    legacyHeaders: bool(o['legacyHeaders'], 'legacyHeaders', true),
    onBlocked: fn(o['onBlocked'], 'onBlocked'),
    blockedCacheSize: int(o['blockedCacheSize'], 'blockedCacheSize', 0, 10_000),
    breaker: breaker as BreakerOptions | false,
    registry: registry as Registry | undefined,
    maxAppIdLabels: int(o['maxAppIdLabels'], 'maxAppIdLabels', 1, 1000),
    clock: fn<() => number>(o['clock'], 'clock') ?? Date.now,
  }
}

function configOption(v: unknown, name: string): RateLimitConfig {
  try {
    return parseConfig(v, `option "${name}"`)
  } catch (err) {
    return fail((err as Error).message)
  }
}

/** The rate-limit settings of one route after merging global and route options. */
export interface RouteSettings {
  /** False: the route is exempt. */
  readonly enabled: boolean
  /** Units one request spends. */
  readonly cost: number
  /** The route's own compiled limits, or null to use the app's config. */
  readonly policy: CompiledPolicy | null
}

/** A route exempt from rate limiting. */
export const EXEMPT: RouteSettings = Object.freeze({ enabled: false, cost: 0, policy: null })

/**
 * THE merge of global and per-route options (used at registration by `onRoute` to validate, and
 * lazily per route at run time). `where` names the route in error messages.
 */
export function resolveOptions(
  global: Pick<NormalizedOptions, 'cost'>,
  route: RouteRateLimitOptions | false | undefined,
  where: string,
): RouteSettings {
  if (route === false) return EXEMPT
  if (route === undefined || route === null) return { enabled: true, cost: global.cost, policy: null }
  if (typeof route !== 'object') fail(`${where}: config.rateLimit must be false or an object`)
  for (const k of Object.keys(route)) {
    if (k !== 'limits' && k !== 'cost') fail(`${where}: unknown option "config.rateLimit.${k}"`)
  }
  const cost = int(route.cost, `${where}: config.rateLimit.cost`, 1, global.cost)
  let policy: CompiledPolicy | null = null
  if (route.limits !== undefined) {
    let parsed: RateLimitConfig
    try {
      parsed = parseConfig({ limits: route.limits }, `${where}: config.rateLimit`)
    } catch (err) {
      return fail((err as Error).message)
    }
    policy = compilePolicy(parsed.limits)
  }
  return Object.freeze({ enabled: true, cost, policy })
}
