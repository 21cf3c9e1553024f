/**
 * The decision engine shared by the `onRequest` hook and `fastify.sluice.check()`: config from the
 * resolver (sync when cached), the blocked-key cache, one store call behind a circuit breaker and a
 * timeout, the fail modes, shadow mode, metrics and logs. `run()` never throws for a store failure.
 */
import {
  BUILT_IN_DEFAULT_CONFIG,
  type CompiledPolicy,
  type ConfigResolver,
  compilePolicy,
  type Decision,
  etagOf,
  type RateLimitConfig,
  type ResolvedConfig,
  type SluiceStoreError,
  type Store,
  serializeConfig,
  toStoreError,
  withTimeout,
} from '@sluice/limiter-core'
import type { FastifyBaseLogger } from 'fastify'
import { agedDecision, BlockedCache } from './blocked-cache.js'
import { CircuitBreaker } from './breaker.js'
import type { DecisionOutcome, SluiceMetrics } from './metrics.js'
import type { NormalizedOptions, RateLimitInfo } from './options.js'
import { StoreErrorLog } from './store-log.js'

/** Returned by `run()` when `unknownAppPolicy: 'reject'` refuses an appId without a config of its own. */
export const UNKNOWN_APP = Symbol('sluice.unknownApp')

export interface LimiterDeps {
  readonly store: Store
  /** The in-process store of `failMode: 'local'`. */
  readonly localStore: Store
  readonly resolver: ConfigResolver
  readonly metrics: SluiceMetrics
  /**
   * True when the store enforces `timeoutMs` itself (the RedisStore the plugin built, or the memory
   * store): then no extra timer per decision. A store given by the user is guarded by one.
   */
  readonly storeHasTimeout: boolean
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === 'function'
}

/** A ResolvedConfig for a config that did not come from a resolver (static, or the outage fallback). */
export function staticResolved(
  appId: string,
  config: RateLimitConfig,
  source: 'app' | 'default',
): ResolvedConfig {
  return Object.freeze({
    appId,
    config,
    source,
    policy: compilePolicy(config.limits),
    etag: etagOf(serializeConfig(config)),
  })
}

/** A resolver serving one config to every subject. */
export function staticResolver(config: RateLimitConfig): ConfigResolver {
  const resolved = staticResolved('default', config, 'default')
  return {
    resolve: () => resolved,
    invalidate: () => {},
    start: async () => {},
    close: async () => {},
  }
}

function isDebug(log: FastifyBaseLogger): boolean {
  const f = (log as { isLevelEnabled?: (l: string) => boolean }).isLevelEnabled
  return typeof f === 'function' ? f.call(log, 'debug') : log.level === 'debug' || log.level === 'trace'
}

export class Limiter {
  readonly store: Store
  readonly localStore: Store
  readonly resolver: ConfigResolver
  readonly metrics: SluiceMetrics
  readonly breaker: CircuitBreaker | null
  readonly blocked: BlockedCache
  private readonly opts: NormalizedOptions
  private readonly now: () => number
  private readonly storeLog: StoreErrorLog
  /** Used when no config can be read at all (resolver failed with nothing cached). */
  private readonly fallback: ResolvedConfig
  private readonly policyIds = new WeakMap<CompiledPolicy, string>()
  private readonly guard: boolean
  private nextPolicyId = 0

  constructor(opts: NormalizedOptions, deps: LimiterDeps) {
    this.opts = opts
    this.now = opts.clock
    this.store = deps.store
    this.localStore = deps.localStore
    this.resolver = deps.resolver
    this.metrics = deps.metrics
    this.guard = !deps.storeHasTimeout
    this.breaker = opts.breaker === false ? null : new CircuitBreaker(opts.breaker, opts.clock)
    this.blocked = new BlockedCache(opts.blockedCacheSize)
    this.storeLog = new StoreErrorLog(opts.clock)
    this.fallback = staticResolved(
      'default',
      opts.config ?? opts.defaultConfig ?? BUILT_IN_DEFAULT_CONFIG,
      'default',
    )
  }

  /** Count and log (rate-limited) a store failure. */
  reportStoreError(
    err: unknown,
    log: FastifyBaseLogger,
    appId: string | null,
    context: string,
  ): SluiceStoreError {
    const e = toStoreError(err)
    this.metrics.storeErrors.labels(e.kind).inc()
    if (this.store.kind === 'redis' || context !== 'decide') this.metrics.setRedisUp(0)
    this.storeLog.report(log, e.kind, appId, `rate-limit store failed (${context}): ${e.message}`, {
      context,
      code: e.code,
    })
    return e
  }

  private async resolveSlow(p: Promise<ResolvedConfig>, appId: string | null, log: FastifyBaseLogger) {
    try {
      return await withTimeout(p, this.opts.timeoutMs)
    } catch (err) {
      this.reportStoreError(err, log, appId, 'config')
      return this.fallback
    }
  }

  /**
   * Decide one request of `appId` (null: anonymous, counted as `ip:<ip>`) costing `cost` units,
   * with the route's own `routePolicy` or the config's. Never rejects for a store failure.
   */
  async run(
    appId: string | null,
    ip: string,
    cost: number,
    routePolicy: CompiledPolicy | null,
    log: FastifyBaseLogger,
  ): Promise<RateLimitInfo | typeof UNKNOWN_APP> {
    let r: ResolvedConfig | Promise<ResolvedConfig>
    try {
      r = this.resolver.resolve(appId ?? 'default')
    } catch (err) {
      this.reportStoreError(err, log, appId, 'config')
      r = this.fallback
    }
    const resolved = isPromise(r) ? await this.resolveSlow(r, appId, log) : r
    if (
      appId !== null &&
      this.opts.unknownAppPolicy === 'reject' &&
      resolved.source === 'default' &&
      resolved !== this.fallback
    ) {
      return UNKNOWN_APP
    }
    const policy = routePolicy ?? resolved.policy
    const subject = appId ?? `ip:${ip}`
    const shadow = resolved.config.shadow
    const useCache = !shadow && this.blocked.maxSize > 0
    const cacheKey = useCache
      ? routePolicy === null
        ? subject
        : `${subject}\u0000${this.policyId(routePolicy)}`
      : ''

    if (useCache) {
      const t = this.now()
      const entry = this.blocked.get(cacheKey, resolved.etag, policy, cost, t)
      if (entry !== undefined) {
        const decision = agedDecision(entry, t)
        return this.finish(appId, subject, resolved, policy, cost, decision, 'blocked', log, true)
      }
    }

    let decision: Decision | null = null
    if (this.breaker === null || this.breaker.allow()) {
      const t0 = performance.now()
      try {
        const p = this.store.decide(subject, policy, cost)
        decision = await (this.guard ? withTimeout(p, this.opts.timeoutMs) : p)
        this.breaker?.success()
        this.metrics.observeDuration(this.store.kind, (performance.now() - t0) / 1000)
        if (this.store.kind === 'redis') this.metrics.setRedisUp(1)
      } catch (err) {
        this.breaker?.failure()
        this.reportStoreError(err, log, appId, 'decide')
      }
    } else {
      this.storeLog.report(log, 'circuit_open', appId, 'rate-limit store skipped: circuit breaker open', {
        context: 'decide',
      })
    }

    if (decision === null) {
      const failMode = resolved.config.failMode
      if (failMode === 'local') {
        const t0 = performance.now()
        try {
          decision = await this.localStore.decide(subject, policy, cost)
          this.metrics.observeDuration('memory', (performance.now() - t0) / 1000)
        } catch (err) {
          // The in-process store should not fail; if it does, admit rather than answer 429.
          this.reportStoreError(err, log, appId, 'local')
          return this.finish(appId, subject, resolved, policy, cost, null, 'fail_open', log, false)
        }
        return this.finish(appId, subject, resolved, policy, cost, decision, 'fail_local', log, false)
      }
      return this.finish(
        appId,
        subject,
        resolved,
        policy,
        cost,
        null,
        failMode === 'open' ? 'fail_open' : 'fail_closed',
        log,
        false,
      )
    }
    const outcome: DecisionOutcome = decision.allowed ? 'allowed' : shadow ? 'shadow_blocked' : 'blocked'
    if (outcome === 'blocked' && useCache) {
      const t = this.now()
      this.blocked.set(cacheKey, {
        appId,
        source: resolved.source,
        etag: resolved.etag,
        policy,
        cost,
        at: t,
        until: t + decision.retryAfterMs,
        decision,
      })
    }
    return this.finish(appId, subject, resolved, policy, cost, decision, outcome, log, false)
  }

  private policyId(policy: CompiledPolicy): string {
    let id = this.policyIds.get(policy)
    if (id === undefined) {
      id = `r${this.nextPolicyId++}`
      this.policyIds.set(policy, id)
    }
    return id
  }

  private finish(
    appId: string | null,
    subject: string,
    resolved: ResolvedConfig,
    policy: CompiledPolicy,
    cost: number,
    decision: Decision | null,
    outcome: DecisionOutcome,
    log: FastifyBaseLogger,
    cached: boolean,
  ): RateLimitInfo {
    let allowed: boolean
    switch (outcome) {
      case 'allowed':
      case 'shadow_blocked':
      case 'fail_open':
        allowed = true
        break
      case 'fail_local':
        allowed = decision === null || decision.allowed || resolved.config.shadow
        break
      default:
        allowed = false
    }
    this.metrics.decision(appId, outcome)
    if (decision !== null && !decision.allowed) {
      const limit = decision.blockedBy
      if (outcome === 'blocked' || (outcome === 'fail_local' && !allowed)) {
        log.info(
          {
            event: 'ratelimit.blocked',
            appId,
            subject,
            limit,
            retryAfterMs: decision.retryAfterMs,
            cost,
            ...(cached ? { cached: true } : {}),
            ...(outcome === 'fail_local' ? { store: 'memory' } : {}),
          },
          'rate limit exceeded',
        )
      } else {
        log.info(
          {
            event: 'ratelimit.shadow_blocked',
            appId,
            subject,
            limit,
            retryAfterMs: decision.retryAfterMs,
            cost,
          },
          'rate limit exceeded (shadow mode: admitted)',
        )
      }
    } else if (isDebug(log)) {
      log.debug(
        { event: 'ratelimit.allowed', appId, subject, cost, decision: outcome },
        'rate limit check passed',
      )
    }
    return { outcome, allowed, decision, resolved, policy, appId, subject, cost }
  }
}
