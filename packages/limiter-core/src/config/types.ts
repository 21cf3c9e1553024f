import type { CompiledPolicy, RateLimitConfig } from '../types.js'

/** Where the config that decides an appId came from. */
export type ConfigSource = 'app' | 'default'

/** A config ready for the hot path. */
export interface ResolvedConfig {
  readonly appId: string
  readonly config: RateLimitConfig
  readonly source: ConfigSource
  /** Compiled once per config change. */
  readonly policy: CompiledPolicy
  /** Strong ETag of the stored JSON value this config was parsed from (quoted, e.g. `"3f2a…"`). */
  readonly etag: string
}

/** Cache outcomes, the `result` label of `sluice_config_cache_total`. */
export type CacheResult = 'hit' | 'miss' | 'stale' | 'invalid'

/** Reload triggers, the `source` label of `sluice_config_reloads_total`. */
export type ReloadSource = 'pubsub' | 'ttl'

/**
 * Callbacks through which the resolver reports what the plugin logs and counts.
 * Each is optional and must not throw.
 */
export interface ResolverHooks {
  onCache?(result: CacheResult, appId: string): void
  onReload?(source: ReloadSource, appId: string): void
  /** A stored value that is not JSON or fails the schema; reported once per distinct bad value. */
  onInvalid?(appId: string, message: string): void
  /** A config that changed and was applied (new etag). */
  onUpdated?(appId: string, source: ConfigSource, etag: string): void
  /** Redis failed while reading or subscribing; the last good config keeps serving. */
  onError?(err: Error, context: string): void
}

/** appId -> the config that decides it. */
export interface ConfigResolver {
  /**
   * The config for `appId`: synchronously from the cache when fresh (steady state: no
   * Redis command), else a promise of one (single-flight) Redis read, bounded by the store timeout.
   */
  resolve(appId: string): ResolvedConfig | Promise<ResolvedConfig>
  /** Drop one cached entry (or all) so the next resolve re-reads Redis. */
  invalidate(appId?: string): void
  /** Start the pub/sub subscriber and the default-config guard; idempotent. */
  start(): Promise<void>
  /** Stop timers and the subscriber connection it created. */
  close(): Promise<void>
}
