/**
 * @sluice/fastify-limiter: distributed, exact, observable rate limiting for Fastify.
 *
 * ```ts
 * import sluiceLimiter from '@sluice/fastify-limiter'
 * await fastify.register(sluiceLimiter, { redis })
 * ```
 */
import { sluiceLimiter } from './plugin.js'

export { BlockedCache, type BlockedEntry } from './blocked-cache.js'
export { type BreakerOptions, type BreakerState, CircuitBreaker } from './breaker.js'
export * from './errors.js'
export { ceilSeconds, policyHeaders, rateLimitHeader, retryAfterSeconds, writeHeaders } from './headers.js'
export { staticResolver } from './limiter.js'
export {
  ANONYMOUS_APP_LABEL,
  type DecisionOutcome,
  OTHER_APP_LABEL,
  OUTCOMES,
  SluiceMetrics,
} from './metrics.js'
export type {
  OnBlocked,
  RateLimitInfo,
  RouteRateLimitOptions,
  RouteSettings,
  SluiceLimiterOptions,
} from './options.js'
export { resolveOptions } from './options.js'
export { type BlockedBody, blockedBody, type SluiceDecorator, sluiceLimiter } from './plugin.js'

export default sluiceLimiter
