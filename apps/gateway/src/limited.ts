/**
 * The rate-limited part of the gateway: @sluice/fastify-limiter registered in an encapsulated scope
 * together with the catch-all route, so that only the catch-all (every path that is not reserved)
 * is decided as a request. Allowed requests are proxied to `UPSTREAM_URL`, or answered with the
 * decision as JSON in demo mode.
 */
import sluiceLimiter, { type RateLimitInfo, type SluiceLimiterOptions } from '@sluice/fastify-limiter'
import type { Store } from '@sluice/limiter-core'
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { proxyTo, registerProxy } from './proxy.js'
import type { RedisClient } from './redis.js'
import type { Settings } from './settings.js'

export interface LimitedDeps {
  readonly settings: Settings
  /** The gateway's Redis client (the plugin builds its store and resolver over it), or null. */
  readonly redis: RedisClient | null
  /** The embedded store when there is no Redis. */
  readonly store: Store | null
  readonly registry: Registry
  readonly upstreamTimeoutMs: number
}

/** The plugin options the settings describe. */
export function limiterOptions(deps: LimitedDeps): SluiceLimiterOptions {
  const s = deps.settings
  const common = {
    appIdHeader: s.appIdHeader,
    timeoutMs: s.redisTimeoutMs,
    cacheTtlMs: s.configCacheTtlMs,
    registry: deps.registry,
    defaultConfig: s.defaultConfig,
  }
  if (deps.redis !== null) return { ...common, redis: deps.redis, unknownAppPolicy: s.unknownAppPolicy }
  return { ...common, ...(deps.store !== null ? { store: deps.store } : {}), unknownAppPolicy: 'default' }
}

/** The demo-mode answer: what was decided, and by which limits. */
export function demoBody(info: RateLimitInfo): Record<string, unknown> {
  return {
    mode: 'demo',
    message: 'allowed; set UPSTREAM_URL to proxy allowed requests',
    allowed: info.allowed,
    outcome: info.outcome,
    appId: info.appId,
    subject: info.subject,
    cost: info.cost,
    configSource: info.resolved.source,
    limits: (info.decision?.limits ?? []).map((l) => ({
      name: l.name,
      limit: l.limit,
      remaining: l.remaining,
      resetMs: l.resetMs,
    })),
  }
}

/** Register the limiter and the catch-all route in `scope` (an encapsulated child of the app). */
export async function registerLimited(scope: FastifyInstance, deps: LimitedDeps): Promise<void> {
  await scope.register(sluiceLimiter, limiterOptions(deps))
  const upstream = deps.settings.upstreamUrl
  if (upstream !== null) {
    await scope.register(async (proxyScope) => {
      await registerProxy(proxyScope, { upstreamUrl: upstream, timeoutMs: deps.upstreamTimeoutMs })
      proxyScope.all('/*', (request, reply) => proxyTo(request, reply))
      proxyScope.all('/', (request, reply) => proxyTo(request, reply))
    })
    return
  }
  const demo = async (request: import('fastify').FastifyRequest) => {
    const info = request.rateLimit
    return info === null ? { mode: 'demo', allowed: true } : demoBody(info)
  }
  scope.all('/*', demo)
  scope.all('/', demo)
}
