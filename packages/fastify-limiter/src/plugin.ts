/**
 * The Fastify plugin: validates options once, builds (or takes) the store and config resolver,
 * decides every request in `onRequest` (before the body is parsed), writes the headers, answers
 * 400 / 403 / 429 / 503 without throwing, and exposes `fastify.sluice` for direct checks.
 */

import {
  BUILT_IN_DEFAULT_CONFIG,
  type ConfigResolver,
  isValidAppId,
  type ResolverHooks,
  type Store,
  waitUntilReady,
} from '@sluice/limiter-core'
import type {
  FastifyBaseLogger,
  FastifyContextConfig,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
} from 'fastify'
import fp from 'fastify-plugin'
import type { Registry } from 'prom-client'
import type { BlockedCache } from './blocked-cache.js'
import type { CircuitBreaker } from './breaker.js'
import { createMemoryStore, createRedisStore, createResolver } from './core.js'
import { SluicePluginError } from './errors.js'
import { policyHeaders, retryAfterSeconds, writeHeaders } from './headers.js'
import { Limiter, staticResolver, UNKNOWN_APP } from './limiter.js'
import { defaultRegistry, type PromClientLike, SluiceMetrics } from './metrics.js'
import {
  normalizeOptions,
  type RateLimitInfo,
  type RouteRateLimitOptions,
  type RouteSettings,
  resolveOptions,
  type SluiceLimiterOptions,
} from './options.js'

/** `fastify.sluice`: direct checks for callers not behind a proxy (the gateway's `POST /v1/check`). */
export interface SluiceDecorator {
  /**
   * Decide `cost` units for `appId` (null: anonymous, counted as `ip:<ip>`) exactly like a request:
   * same config, blocked-key cache, fail modes, metrics and logs. Throws `SluicePluginError`
   * `SLUICE_ERR_INVALID_APP_ID` (400) for an invalid appId and `SLUICE_ERR_UNKNOWN_APP` (403)
   * under `unknownAppPolicy: 'reject'`; never throws for a store failure (see `info.outcome`).
   */
  check(
    appId: string | null,
    cost?: number,
    options?: { ip?: string; log?: FastifyBaseLogger },
  ): Promise<RateLimitInfo>
  /** Write the rate-limit headers of `info` on `reply` (and `Retry-After` when it was refused). */
  writeHeaders(reply: FastifyReply, info: RateLimitInfo): void
  /** The 429 JSON body of a blocked `info` (contract section 5). */
  blockedBody(info: RateLimitInfo): BlockedBody
  readonly store: Store
  readonly resolver: ConfigResolver
  readonly metrics: SluiceMetrics
  readonly breaker: CircuitBreaker | null
  readonly blockedCache: BlockedCache
}

/** The 429 body (contract section 5). */
export interface BlockedBody {
  statusCode: 429
  error: 'Too Many Requests'
  message: string
  appId: string | null
  limit: string | null
  retryAfterMs: number
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Rate limiting of this route: `false` exempts it; an object sets its own `limits` / `cost`. */
    rateLimit?: RouteRateLimitOptions | false
  }
  interface FastifyInstance {
    /** Direct rate-limit checks (registered by @sluice/fastify-limiter). */
    sluice: SluiceDecorator
  }
  interface FastifyRequest {
    /** The rate-limit result of this request (null when the route is exempt or not yet decided). */
    rateLimit: RateLimitInfo | null
  }
}

const NAME = '@sluice/fastify-limiter'
/** At registration, how long to wait for a connecting `redis` client before starting the resolver anyway. */
const START_WAIT_MS = 2000

function pickRegistry(
  fastify: FastifyInstance,
  given: Registry | undefined,
): { registry: Registry; client?: PromClientLike } {
  if (given !== undefined) return { registry: given }
  const m = (fastify as unknown as { metrics?: { client?: PromClientLike & { register?: Registry } } })
    .metrics
  if (m?.client?.register !== undefined) return { registry: m.client.register, client: m.client }
  return { registry: defaultRegistry }
}

/** The body sent on 429. */
export function blockedBody(info: RateLimitInfo): BlockedBody {
  const d = info.decision
  const retryAfterMs = d?.retryAfterMs ?? 0
  const limit = d?.blockedBy ?? null
  return {
    statusCode: 429,
    error: 'Too Many Requests',
    message: `Rate limit ${limit === null ? '' : `"${limit}" `}exceeded, retry in ${retryAfterSeconds(retryAfterMs)} second(s)`,
    appId: info.appId,
    limit,
    retryAfterMs,
  }
}

function errorBody(err: SluicePluginError): string {
  return JSON.stringify({
    statusCode: err.statusCode,
    error:
      err.statusCode === 400 ? 'Bad Request' : err.statusCode === 403 ? 'Forbidden' : 'Service Unavailable',
    code: err.code,
    message: err.message,
  })
}

const STORE_UNAVAILABLE_BODY = errorBody(
  new SluicePluginError('SLUICE_ERR_STORE_UNAVAILABLE', 'rate-limit store unavailable, retry later'),
)

const sluiceLimiterPlugin: FastifyPluginAsync<SluiceLimiterOptions> = async (fastify, rawOptions) => {
  if (fastify.hasDecorator('sluice')) throw new SluicePluginError('SLUICE_ERR_PLUGIN_REGISTERED')
  const opts = normalizeOptions(rawOptions)
  const { registry, client } = pickRegistry(fastify, opts.registry)
  const metrics = new SluiceMetrics(registry, opts.maxAppIdLabels, client)

  // Close only what we created.
  const owned: { close(): Promise<void> }[] = []

  let store: Store
  if (opts.store !== undefined) store = opts.store
  else if (opts.redis !== undefined) {
    store = createRedisStore(opts.redis, opts.timeoutMs, opts.batch)
    owned.push(store)
  } else {
    store = createMemoryStore()
    owned.push(store)
    fastify.log.warn(
      { event: 'ratelimit.memory_store', appId: null },
      'sluice: no "redis" or "store" given: using the in-process memory store, counters are per-process',
    )
  }
  const localStore = store.kind === 'memory' ? store : createMemoryStore()
  if (localStore !== store) owned.push(localStore)
  metrics.setRedisUp(0)

  // Forward-declared: the resolver's hooks need the limiter's blocked-key cache.
  let limiter: Limiter | undefined
  const hooks: ResolverHooks = {
    onCache: (result) => metrics.configCacheResult(result),
    onReload: (source) => metrics.configReloads.labels(source).inc(),
    onInvalid: (appId, message) => {
      fastify.log.error(
        { event: 'ratelimit.config_invalid', appId, reason: message },
        'invalid rate-limit config ignored',
      )
    },
    onUpdated: (appId, source, etag) => {
      limiter?.blocked.dropApp(appId)
      fastify.log.info(
        { event: 'ratelimit.config_updated', appId, source, etag },
        'rate-limit config updated',
      )
    },
    onError: (err, context) => {
      limiter?.reportStoreError(err, fastify.log, null, `config:${context}`)
    },
  }

  let resolver: ConfigResolver
  if (opts.resolver !== undefined) resolver = opts.resolver
  else if (opts.config !== undefined) resolver = staticResolver(opts.config)
  else if (opts.redis !== undefined) {
    resolver = createResolver(opts, opts.redis, hooks)
    owned.push(resolver)
  } else resolver = staticResolver(opts.defaultConfig ?? BUILT_IN_DEFAULT_CONFIG)

  const storeHasTimeout = store.kind === 'memory' || (opts.store === undefined && opts.redis !== undefined)
  limiter = new Limiter(opts, { store, localStore, resolver, metrics, storeHasTimeout })
  const lim = limiter

  if (owned.includes(resolver)) {
    // A client still connecting would fail the default-config seed (no offline queue): wait a little.
    if (opts.redis !== undefined) {
      await waitUntilReady(opts.redis, START_WAIT_MS).catch((err: unknown) => {
        lim.reportStoreError(err, fastify.log, null, 'config:start')
      })
    }
    try {
      await resolver.start()
    } catch (err) {
      lim.reportStoreError(err, fastify.log, null, 'config:start')
    }
  }

  // sluice_redis_up follows the client's connection too (not only decisions).
  const redisClient = opts.redis
  const onUp = () => metrics.setRedisUp(1)
  const onDown = () => metrics.setRedisUp(0)
  if (redisClient !== undefined) {
    if (redisClient.status === 'ready') onUp()
    redisClient.on('ready', onUp)
    redisClient.on('close', onDown)
  }

  fastify.addHook('onClose', async () => {
    if (redisClient !== undefined) {
      redisClient.off('ready', onUp)
      redisClient.off('close', onDown)
    }
    for (const o of owned.reverse()) {
      try {
        await o.close()
      } catch (err) {
        fastify.log.warn({ err }, 'sluice: error while closing')
      }
    }
  })

  // Route options: validated at registration, merged lazily per route config object at run time.
  const settingsCache = new WeakMap<object, RouteSettings>()
  fastify.addHook('onRoute', (route) => {
    const where = `route ${String(route.method)} ${route.url}`
    resolveOptions(opts, (route.config as FastifyContextConfig | undefined)?.rateLimit, where)
  })
  const globalSettings = resolveOptions(opts, undefined, 'plugin options')
  const settingsOf = (request: FastifyRequest): RouteSettings => {
    const config = request.routeOptions.config as FastifyContextConfig | undefined
    if (config === undefined || config === null) return globalSettings
    let s = settingsCache.get(config)
    if (s === undefined) {
      const where = `route ${request.routeOptions.method} ${request.routeOptions.url}`
      try {
        s = resolveOptions(opts, config.rateLimit, where)
      } catch (err) {
        // Only for routes added before the plugin (onRoute validates the others): limit them with
        // the global settings rather than silently exempting them.
        fastify.log.error(
          { event: 'ratelimit.route_options_invalid', appId: null, err },
          (err as Error).message,
        )
        s = globalSettings
      }
      settingsCache.set(config, s)
    }
    return s
  }

  const header = opts.appIdHeader
  const keyGenerator = opts.keyGenerator
  const sendHeaders = opts.headers
  const legacy = opts.legacyHeaders
  const onBlocked = opts.onBlocked

  const writeInfoHeaders = (reply: FastifyReply, info: RateLimitInfo): void => {
    if (!sendHeaders) return
    if (info.decision !== null) writeHeaders(reply, info.policy, info.decision, legacy)
    else reply.header('ratelimit-policy', policyHeaders(info.policy).policy)
  }

  fastify.decorateRequest('rateLimit', null)
  fastify.decorate('sluice', {
    check: async (
      appId: string | null,
      cost?: number,
      options?: { ip?: string; log?: FastifyBaseLogger },
    ) => {
      if (appId !== null && !isValidAppId(appId)) {
        throw new SluicePluginError('SLUICE_ERR_INVALID_APP_ID', 'appId must match ^[A-Za-z0-9._:-]{1,128}$')
      }
      const c = cost ?? opts.cost
      if (!Number.isInteger(c) || c < 1) {
        throw new SluicePluginError(
          'SLUICE_ERR_INVALID_COST',
          `cost must be an integer >= 1, got ${String(c)}`,
        )
      }
      const info = await lim.run(appId, options?.ip ?? 'unknown', c, null, options?.log ?? fastify.log)
      if (info === UNKNOWN_APP)
        throw new SluicePluginError('SLUICE_ERR_UNKNOWN_APP', `unknown appId "${appId}"`)
      return info
    },
    writeHeaders: (reply: FastifyReply, info: RateLimitInfo) => {
      writeInfoHeaders(reply, info)
      if (!info.allowed) {
        reply.header(
          'retry-after',
          info.decision === null ? 1 : retryAfterSeconds(info.decision.retryAfterMs),
        )
      }
    },
    blockedBody,
    store,
    resolver,
    metrics,
    breaker: lim.breaker,
    blockedCache: lim.blocked,
  } satisfies SluiceDecorator)

  fastify.addHook('onRequest', async (request, reply) => {
    const settings = settingsOf(request)
    if (!settings.enabled) return
    const raw = keyGenerator === undefined ? request.headers[header] : keyGenerator(request)
    let appId: string | null = null
    if (raw !== undefined && raw !== null && raw !== '') {
      if (typeof raw !== 'string' || !isValidAppId(raw)) {
        reply
          .code(400)
          .type('application/json; charset=utf-8')
          .send(
            errorBody(
              new SluicePluginError(
                'SLUICE_ERR_INVALID_APP_ID',
                `${header} must match ^[A-Za-z0-9._:-]{1,128}$`,
              ),
            ),
          )
        return reply
      }
      appId = raw
    }
    // request.ip is a getter (a getpeername call, or proxy parsing): read it only when it is the subject.
    const ip = appId === null ? request.ip : ''
    const info = await lim.run(appId, ip, settings.cost, settings.policy, request.log)
    if (info === UNKNOWN_APP) {
      reply
        .code(403)
        .type('application/json; charset=utf-8')
        .send(
          errorBody(
            new SluicePluginError('SLUICE_ERR_UNKNOWN_APP', `no rate-limit config for appId "${appId}"`),
          ),
        )
      return reply
    }
    request.rateLimit = info
    writeInfoHeaders(reply, info)
    if (info.allowed) return
    if (info.outcome === 'fail_closed') {
      reply
        .code(503)
        .header('retry-after', 1)
        .type('application/json; charset=utf-8')
        .send(STORE_UNAVAILABLE_BODY)
      return reply
    }
    const d = info.decision!
    reply.header('retry-after', retryAfterSeconds(d.retryAfterMs))
    if (onBlocked !== undefined) {
      await onBlocked(request, reply, info)
      return reply
    }
    reply
      .code(429)
      .type('application/json; charset=utf-8')
      .send(JSON.stringify(blockedBody(info)))
    return reply
  })
}

/** The plugin (`fastify.register(sluiceLimiter, options)`). */
export const sluiceLimiter = fp(sluiceLimiterPlugin, { fastify: '5.x', name: NAME })
