/**
 * Shared types of @sluice/limiter-core. These are the seams between the
 * algorithms, the stores, the config resolver and the Fastify plugins:
 * change them only together with every user.
 */

/** The rate-limit algorithms of config schema version 1 (contract section 4). */
export type Algorithm = 'sliding-log' | 'sliding-window' | 'token-bucket' | 'fixed-window'

/** Every algorithm name, in schema order. */
export const ALGORITHMS: readonly Algorithm[] = [
  'sliding-log',
  'sliding-window',
  'token-bucket',
  'fixed-window',
]

/** One limit of a config: `limit` units per `windowMs` milliseconds. */
export interface LimitSpec {
  /** Unique within a config, `^[a-z0-9][a-z0-9_-]{0,31}$`; part of the counter key. */
  readonly name: string
  readonly algorithm: Algorithm
  /** Integer 1..1e9 (sliding-log: at most 10000). */
  readonly limit: number
  /** Integer 1..2678400000 (31 days). */
  readonly windowMs: number
}

/** What happens when the store fails or times out. */
export type FailMode = 'open' | 'closed' | 'local'

/** A validated config (schema version 1) with defaults applied. */
export interface RateLimitConfig {
  readonly limits: readonly LimitSpec[]
  readonly failMode: FailMode
  readonly shadow: boolean
}

/**
 * The limits of a config prepared once (when the config changes) for the hot
 * path: script arguments and key suffixes are computed here, never per request.
 * Build one with `compilePolicy()`; treat it as opaque outside the stores.
 */
export interface CompiledPolicy {
  readonly limits: readonly LimitSpec[]
  /** Key suffixes, one per limit, in `limits` order: `<name>:<alg-code>:<windowMs>`. */
  readonly keySuffixes: readonly string[]
  /** Precomputed ARGV tail for the decide script (everything but `cost`). */
  readonly argv: readonly (string | number)[]
  /** Index of the limit with the smallest `limit / windowMs`, for the legacy X-RateLimit-* headers. */
  readonly tightest: number
}

/** The outcome of one decision for one limit. */
export interface LimitResult {
  readonly name: string
  readonly limit: number
  /** Units still available after this decision (never negative). */
  readonly remaining: number
  /** Milliseconds until the counter is fully reset / refilled (>= 0). */
  readonly resetMs: number
  /** 0 when this limit admitted the request; else milliseconds until it could (>= 1). */
  readonly retryAfterMs: number
  readonly allowed: boolean
}

/** The outcome of one decision over every limit of a policy. */
export interface Decision {
  /** True only if every limit admitted the request (then it was counted in every limit). */
  readonly allowed: boolean
  /** Per limit, in policy order. */
  readonly limits: readonly LimitResult[]
  /** Name of the first limit that rejected the request, or null when allowed. */
  readonly blockedBy: string | null
  /** 0 when allowed; else the max retryAfterMs over rejecting limits. */
  readonly retryAfterMs: number
  /** The store's clock (Redis TIME, or the memory store's clock) at the decision, ms since epoch. */
  readonly nowMs: number
}

/** A store decides; Redis and memory implementations give the same answers for the same clock. */
export interface Store {
  /** `redis` or `memory`: the label of `sluice_decision_duration_seconds`. */
  readonly kind: 'redis' | 'memory'
  /**
   * Decide `cost` units for `subject` against every limit of `policy`, atomically:
   * admitted only if every limit admits, then counted in every limit; a rejection consumes nothing.
   * Rejects with a `SluiceStoreError` (timeout / connection / script) when the store fails.
   */
  decide(subject: string, policy: CompiledPolicy, cost: number): Promise<Decision>
  /** Release what the store created (never a client it was given). */
  close(): Promise<void>
}
