/**
 * `createApp(settings)`: composes the gateway from its parts. Data flows one way:
 * gateway -> plugins (@sluice/fastify-limiter, @sluice/admin-plugin) -> core -> Redis.
 *
 * - Redis: `REDIS_CLUSTER_NODES` wins over `REDIS_URL`; neither: the embedded in-process store and
 *   the static default config (counters are per process: a warning says so).
 * - `/metrics` (fastify-metrics, one registry per app holding the limiter's metrics too),
 *   `/healthz`, `/readyz`, `POST /v1/check`: reserved, never rate limited as requests.
 * - The admin API (only with a JWT key): on the `ADMIN_PORT` listener when set, else on `PORT`.
 * - Every other path: rate limited for the appId in `APP_ID_HEADER`, then proxied to
 *   `UPSTREAM_URL`, or answered with the decision as JSON (demo mode).
 */
import { ConfigRepository, type ConfigResolver, DEFAULT_APP_ID, MemoryStore } from '@sluice/limiter-core'
import Fastify, {
  type FastifyInstance,
  type FastifyLoggerOptions,
  type FastifyPluginCallback,
  type FastifyReply,
  LogController,
} from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import type { DestinationStream, LoggerOptions as PinoLoggerOptions } from 'pino'
import { Registry } from 'prom-client'
import { registerAdmin } from './admin.js'
import { registerCheck } from './check.js'
import { type ReadinessProbe, registerHealth, withTimeout } from './health.js'
import { registerLimited } from './limited.js'
import { loggerOptions, safeUrl } from './logger.js'
import { closeRedis, connectRedis, type RedisClient } from './redis.js'
import { hasJwtKey, type Settings } from './settings.js'

export { GatewayError, SettingsError } from './errors.js'
export { loadSettings, type Settings } from './settings.js'

// fastify-metrics is CommonJS with `exports.default`: under NodeNext the default import is the module.
const fastifyMetrics = ((fastifyMetricsModule as unknown as { default?: unknown }).default ??
  fastifyMetricsModule) as unknown as FastifyPluginCallback<Record<string, unknown>>

/** Upper bound of the drain on close: in-flight requests get this long to finish. */
export const DRAIN_TIMEOUT_MS = 10_000

/** What tests (or embedders) may replace. */
const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const
const RESERVED_METHODS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['/v1/check', ['POST']],
  ['/healthz', ['GET', 'HEAD']],
  ['/readyz', ['GET', 'HEAD']],
  ['/metrics', ['GET', 'HEAD']],
]

export interface AppOverrides {
  /** Log destination (default stdout). */
  readonly logStream?: DestinationStream
  /** Upstream response timeout in ms (headers, and between body chunks). Default 30000. */
  readonly upstreamTimeoutMs?: number
  /** Drain bound in ms. Default `DRAIN_TIMEOUT_MS`. */
  readonly drainTimeoutMs?: number
}

/** A composed gateway: one or two Fastify instances sharing one Redis connection and resolver. */
export interface Gateway {
  /** The `PORT` app (inject into it in tests). */
  readonly app: FastifyInstance
  /** The `ADMIN_PORT` app, or null when the admin API (if mounted) is served by `app`. */
  readonly adminApp: FastifyInstance | null
  readonly settings: Settings
  /** The Redis client, null on the embedded store. */
  readonly redis: RedisClient | null
  /** Listen on PORT/HOST (and ADMIN_PORT); resolves with the bound addresses. */
  listen(): Promise<{ url: string; adminUrl: string | null }>
  /** Stop accepting, drain in-flight requests (bounded), close Redis. Idempotent. */
  close(): Promise<void>
}

/** Build the gateway described by `settings`. Nothing listens until `listen()`. */
export async function createApp(settings: Settings, overrides: AppOverrides = {}): Promise<Gateway> {
  const drainMs = overrides.drainTimeoutMs ?? DRAIN_TIMEOUT_MS
  let closing = false
  const fastifyOpts = {
    logger: loggerOptions(settings, overrides.logStream) as FastifyLoggerOptions & PinoLoggerOptions,
    // Fastify accepts a hop count at run time; its types omit number.
    trustProxy: settings.trustProxy as boolean | string,
    return503OnClosing: true,
    forceCloseConnections: 'idle' as const,
    requestIdHeader: 'x-request-id',
    // Request/response lines only at debug and below: at info every request would be two lines.
    logController: new LogController({
      disableRequestLogging: settings.logLevel !== 'debug' && settings.logLevel !== 'trace',
    }),
    // appIds are up to 128 characters (contract section 5); Fastify's default (100) would answer
    // 414 on the admin API's /:appId routes for the longest ones.
    routerOptions: { maxParamLength: 256 },
  }
  const app = Fastify(fastifyOpts)
  const adminApp = settings.adminPort !== null && hasJwtKey(settings) ? Fastify(fastifyOpts) : null
  const log = app.log

  // --- Redis ----------------------------------------------------------------------------------
  const redis = connectRedis(settings)
  redis?.on('error', () => {
    // Connection errors surface as store errors (metrics, rate-limited logs) and in /readyz.
  })
  const repository = redis === null ? null : new ConfigRepository(redis)
  // On the embedded store the gateway owns the memory store; with Redis the limiter plugin builds
  // (and closes) its Redis store and config resolver over the gateway's client.
  const memoryStore = redis === null ? new MemoryStore() : null
  if (redis !== null) {
    log.info(
      {
        event: 'gateway.redis',
        mode: settings.redisClusterNodes !== null ? 'cluster' : 'standalone',
        target:
          settings.redisClusterNodes !== null
            ? settings.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(',')
            : safeUrl(settings.redisUrl ?? ''),
      },
      'using Redis',
    )
  } else {
    log.warn(
      { event: 'gateway.embedded_store' },
      'no REDIS_URL or REDIS_CLUSTER_NODES: using the embedded in-process store; counters are per process and not shared between instances',
    )
    if (settings.unknownAppPolicy === 'reject') {
      log.warn(
        { event: 'gateway.unknown_app_policy_ignored' },
        'UNKNOWN_APP_POLICY=reject needs per-app configs in Redis; on the embedded store every app uses the default config',
      )
    }
  }
  if (!hasJwtKey(settings)) {
    log.warn(
      { event: 'gateway.admin_disabled' },
      'no ADMIN_JWT_SECRET or ADMIN_JWT_PUBLIC_KEY: the admin API is not mounted and POST /v1/check needs no token',
    )
  }

  // --- readiness ------------------------------------------------------------------------------
  const probe: ReadinessProbe =
    redis === null || repository === null
      ? async () => ({ ready: true })
      : async () => {
          const budget = Math.max(settings.redisTimeoutMs, 1)
          try {
            await withTimeout(redis.ping(), budget, `Redis did not answer PING within ${budget} ms`)
          } catch (err) {
            return { ready: false, reason: `redis: ${(err as Error).message}` }
          }
          try {
            const stored = await withTimeout(
              repository.get(DEFAULT_APP_ID),
              budget,
              'default config read timed out',
            )
            if (stored === null)
              return { ready: false, reason: 'default config rateLimitConfig:default is missing' }
          } catch (err) {
            return { ready: false, reason: `redis: ${(err as Error).message}` }
          }
          return { ready: true }
        }

  // --- the PORT app -----------------------------------------------------------------------------
  const registry = new Registry()
  await app.register(fastifyMetrics, {
    endpoint: '/metrics',
    defaultMetrics: { enabled: true, register: registry },
    routeMetrics: {
      // Histogram only: the per-route summary (quantiles computed in-process on every request) costs
      // server CPU on the hot path and its quantiles cannot be aggregated across pods anyway.
      // fastify-metrics still creates the (never observed) Summary, so it stays in the app's registry.
      enabled: { histogram: true, summary: false },
      routeBlacklist: ['/metrics', '/healthz', '/readyz'],
      overrides: { histogram: { registers: [registry] }, summary: { registers: [registry] } },
    },
  })
  registerHealth(app, probe, () => closing)

  // The limiter lives in its own scope with the rate-limited catch-all route and /v1/check, so
  // its hooks never see the reserved routes registered above.
  let resolver: ConfigResolver | null = null
  await app.register(async (scope) => {
    await registerLimited(scope, {
      settings,
      redis,
      store: memoryStore,
      registry,
      upstreamTimeoutMs: overrides.upstreamTimeoutMs ?? 30_000,
    })
    resolver = scope.sluice.resolver
    await registerCheck(scope, settings)
  })

  const adminTarget = adminApp ?? app
  if (hasJwtKey(settings) && redis !== null && resolver !== null) {
    await registerAdmin(adminTarget, { settings, redis, resolver })
  } else if (hasJwtKey(settings)) {
    log.warn(
      { event: 'gateway.admin_no_redis' },
      'the admin API needs Redis (REDIS_URL or REDIS_CLUSTER_NODES); it is not mounted on the embedded store',
    )
  }
  if (adminApp !== null) {
    adminApp.get('/healthz', async () => ({ status: 'ok' }))
  }
  // `/admin/*` is reserved: every path under it that is not an admin route answers 404 on PORT
  // (also when the API is on ADMIN_PORT, or not mounted) rather than falling into the rate-limited
  // catch-all and the upstream.
  const adminOnMain = hasJwtKey(settings) && redis !== null && adminApp === null
  const notHere = async (_request: unknown, reply: FastifyReply) =>
    reply.code(404).send({
      statusCode: 404,
      error: 'Not Found',
      message: adminOnMain
        ? 'no such admin route'
        : adminApp !== null
          ? 'the admin API is served on ADMIN_PORT'
          : 'the admin API is not mounted (it needs ADMIN_JWT_SECRET or ADMIN_JWT_PUBLIC_KEY, and Redis)',
    })
  app.all('/admin', notHere)
  app.all('/admin/*', notHere)
  // The other reserved paths answer 405 for methods they do not serve, instead of falling into the
  // rate-limited catch-all and being proxied.
  for (const [path, allow] of RESERVED_METHODS) {
    const others = ALL_METHODS.filter((m) => !allow.includes(m))
    app.route({
      method: others,
      url: path,
      config: { rateLimit: false },
      handler: async (_request, reply) =>
        reply
          .code(405)
          .header('allow', allow.join(', '))
          .send({
            statusCode: 405,
            error: 'Method Not Allowed',
            message: `${path} allows ${allow.join(', ')}`,
          }),
    })
  }

  await app.ready()
  await adminApp?.ready()

  let closed: Promise<void> | null = null
  const close = (): Promise<void> => {
    if (closed !== null) return closed
    closing = true
    closed = (async () => {
      const drain = Promise.all([app.close(), adminApp?.close()])
      await withTimeout(drain, drainMs, 'drain timed out').catch((err: unknown) => {
        log.warn(
          { event: 'gateway.drain_timeout', err },
          'in-flight requests did not finish within the drain bound',
        )
      })
      await memoryStore?.close().catch(() => {})
      if (redis !== null) await closeRedis(redis)
    })()
    return closed
  }

  return {
    app,
    adminApp,
    settings,
    redis,
    close,
    async listen() {
      const url = await app.listen({ port: settings.port, host: settings.host })
      let adminUrl: string | null = null
      if (adminApp !== null && settings.adminPort !== null) {
        adminUrl = await adminApp.listen({ port: settings.adminPort, host: settings.host })
      }
      log.info(
        { event: 'gateway.listening', url, adminUrl, upstream: settings.upstreamUrl ?? 'demo' },
        'listening',
      )
      return { url, adminUrl }
    },
  }
}
