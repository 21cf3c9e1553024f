import fastifySwagger from '@fastify/swagger'
import { type TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import {
  type AdminPutResult,
  type AdminStoredConfig,
  BUILT_IN_DEFAULT_CONFIG,
  ConfigAdmin,
  type ConfigResolver,
  ConfigValidationError,
  DEFAULT_APP_ID,
  etagOf,
  type Precondition,
  type RateLimitConfig,
  type RedisLike,
  SluiceError,
  SluiceStoreError,
  type Store,
  serializeConfig,
} from '@sluice/limiter-core'
import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchemaCompiler,
} from 'fastify'
import fp from 'fastify-plugin'
import {
  type AdminJwtOptions,
  type Authenticator,
  type BruteForceOptions,
  createAuthenticator,
  type Principal,
  sendAdminError,
} from './auth.js'
import { AdminError, AdminOptionsError } from './errors.js'
import {
  AppIdParams,
  AuditQuery,
  AuditReply,
  ConditionalHeaders,
  ConfigBody,
  EffectiveReply,
  ErrorReply,
  HistoryReply,
  ListReply,
  RollbackBody,
  StoredConfig,
} from './schemas.js'

/** Options of `adminPlugin`. */
export interface AdminPluginOptions {
  /** ioredis client (standalone or Cluster) holding the configs. Never closed by the plugin. */
  readonly redis: RedisLike
  /** How bearer tokens are verified (HS256 secret or RS256/ES256 public key). */
  readonly jwt: AdminJwtOptions
  /** Route prefix (default `/admin/v1`). */
  readonly prefix?: string
  /** Resolver answering `GET …/:appId/effective` (default: read Redis directly, app then default). */
  readonly resolver?: ConfigResolver
  /** Store counting failed authentications (default: an in-process MemoryStore). */
  readonly store?: Store
  /** Brute-force protection (default 20 failures per 60 s per address); `false` turns it off. */
  readonly bruteForce?: Omit<BruteForceOptions, 'store'> | false
  /** Largest accepted request body, bytes (default 65536; larger: 413). */
  readonly bodyLimit?: number
  /** Versions kept per app (default 20). */
  readonly historyLength?: number
  /** Serve the OpenAPI document at `<prefix>/openapi.json` without a token (default true). */
  readonly publicOpenApi?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The Redis side of the admin API, set by `adminPlugin`. */
    sluiceConfigAdmin: ConfigAdmin
  }
}

const READ = 'ratelimit:read'
const WRITE = 'ratelimit:write'

/** Parse `If-Match` / `If-None-Match` into a precondition. */
export function preconditionOf(headers: {
  'if-match'?: string | undefined
  'if-none-match'?: string | undefined
}): Precondition {
  const ifMatch = headers['if-match']
  if (ifMatch !== undefined) {
    const tags = ifMatch
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
    if (tags.includes('*')) return { ifMatch: '*' }
    return { ifMatch: tags }
  }
  if (headers['if-none-match']?.trim() === '*') return { ifNoneMatch: '*' }
  return {}
}

/** Body schemas whose validation is done by the core's `validateConfig` (precise field messages). */
const CORE_VALIDATED = new WeakSet<object>([ConfigBody])

const validatorCompiler: FastifySchemaCompiler<unknown> = (route) => {
  if (route.httpPart === 'body' && CORE_VALIDATED.has(route.schema as object))
    return (value: unknown) => ({ value })
  return (TypeBoxValidatorCompiler as unknown as FastifySchemaCompiler<unknown>)(route)
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function actorOf(p: Principal): string {
  return p.sub ?? '(no sub)'
}

/** `{ path, message }` issues -> 400 naming the first field and rule. */
function invalidConfig(appId: string, issues: readonly { path: string; message: string }[]): AdminError {
  const detail = issues.map((i) => `${i.path} ${i.message}`).join('; ')
  return new AdminError('SLUICE_ERR_ADMIN_INVALID_CONFIG', `appId=${appId}: ${detail}`, {
    details: { errors: issues.map((i) => ({ path: i.path, message: i.message })) },
  })
}

function storedConfigOf(s: AdminStoredConfig): RateLimitConfig {
  if (s.config === null) {
    const detail = s.issues.map((i) => `${i.path} ${i.message}`).join('; ')
    throw new AdminError(
      'SLUICE_ERR_ADMIN_STORED_CONFIG_INVALID',
      `appId=${s.appId}: the stored config fails the schema (${detail}); overwrite it with a PUT`,
      { details: { errors: s.issues } },
    )
  }
  return s.config
}

function toPlain(c: RateLimitConfig) {
  return JSON.parse(serializeConfig(c)) as {
    limits: {
      name: string
      algorithm: 'sliding-log' | 'sliding-window' | 'token-bucket' | 'fixed-window'
      limit: number
      windowMs: number
    }[]
    failMode: 'open' | 'closed' | 'local'
    shadow: boolean
  }
}

function putOutcome(appId: string, r: AdminPutResult, reply: FastifyReply, request: FastifyRequest) {
  if (r.ok) {
    if (!r.audited)
      request.log.error({ event: 'admin.audit_failed', appId }, 'change made but audit entry not written')
    request.log.info(
      { event: 'ratelimit.config_updated', appId, etag: r.etag, oldEtag: r.oldEtag, version: r.version },
      'config stored',
    )
    reply.header('etag', r.etag)
    return toPlain(r.config)
  }
  if (r.reason === 'invalid') throw invalidConfig(appId, r.issues)
  if (r.reason === 'version_not_found') throw new AdminError('SLUICE_ERR_ADMIN_VERSION_NOT_FOUND')
  throw preconditionFailed(r.currentEtag)
}

function preconditionFailed(currentEtag: string | null): AdminError {
  return new AdminError(
    'SLUICE_ERR_ADMIN_PRECONDITION_FAILED',
    currentEtag === null
      ? 'precondition failed: the config does not exist (or exists, for If-None-Match: *)'
      : 'precondition failed: If-Match does not match the current ETag',
    { details: { currentEtag } },
  )
}

/** Map any error reaching the admin scope's error handler to an `AdminError`. */
function toAdminError(err: FastifyError | Error): AdminError {
  if (err instanceof AdminError) return err
  const e = err as FastifyError & { validationContext?: string }
  if (e.validation !== undefined) {
    const issues = e.validation.map((v) => ({
      path: `${e.validationContext ?? 'request'}${(v.instancePath ?? '').replace(/\//g, '.')}`,
      message: v.message ?? 'is invalid',
    }))
    if (e.validationContext === 'params') {
      return new AdminError(
        'SLUICE_ERR_ADMIN_INVALID_APP_ID',
        'invalid appId: must match ^[A-Za-z0-9._:-]{1,128}$',
      )
    }
    const first = issues[0]
    return new AdminError(
      'SLUICE_ERR_ADMIN_BAD_REQUEST',
      first === undefined ? 'invalid request' : `${first.path}: ${first.message}`,
      { details: { errors: issues } },
    )
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new AdminError('SLUICE_ERR_ADMIN_BODY_TOO_LARGE')
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new AdminError('SLUICE_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE')
  if (
    e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
    (err instanceof SyntaxError && e.statusCode === 400)
  ) {
    return new AdminError('SLUICE_ERR_ADMIN_BAD_REQUEST', `body is not valid JSON (${e.message})`)
  }
  if (err instanceof ConfigValidationError) return invalidConfig('?', err.errors)
  if (err instanceof SluiceStoreError || isRedisError(err)) {
    return new AdminError('SLUICE_ERR_ADMIN_STORE_UNAVAILABLE', `Redis is unavailable: ${err.message}`, {
      headers: { 'retry-after': '1' },
      cause: err,
    })
  }
  if (
    err instanceof SluiceError &&
    err.statusCode >= 400 &&
    err.statusCode < 500 &&
    err.code === 'SLUICE_ERR_INVALID_APP_ID'
  ) {
    return new AdminError('SLUICE_ERR_ADMIN_INVALID_APP_ID', err.message)
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new AdminError('SLUICE_ERR_ADMIN_BAD_REQUEST', e.message)
  }
  throw err
}

function isRedisError(err: Error): boolean {
  return (
    err.name === 'ReplyError' ||
    err.name === 'MaxRetriesPerRequestError' ||
    err.name === 'ClusterAllFailedError' ||
    /Connection is closed|enableOfflineQueue|ECONNREFUSED|Command timed out/.test(err.message)
  )
}

async function admin(fastify: FastifyInstance, opts: AdminPluginOptions): Promise<void> {
  const api = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const configs = new ConfigAdmin(opts.redis, {
    historyLength: opts.historyLength ?? 20,
    onAuditError: (err, entry) =>
      fastify.log.error(
        { event: 'admin.audit_failed', appId: entry.appId, err: err.message },
        'audit write failed',
      ),
  })
  fastify.decorate('sluiceConfigAdmin', configs)
  const bruteForce =
    opts.bruteForce === false ? false : { ...opts.bruteForce, ...(opts.store ? { store: opts.store } : {}) }
  const auth: Authenticator = await createAuthenticator(fastify, { jwt: opts.jwt, bruteForce })

  fastify.setValidatorCompiler(validatorCompiler)
  fastify.setErrorHandler((err, request, reply) => {
    let e: AdminError
    try {
      e = toAdminError(err as Error)
    } catch {
      request.log.error({ err }, 'admin request failed')
      return reply.code(500).send({
        statusCode: 500,
        code: 'SLUICE_ERR_ADMIN_INTERNAL',
        error: 'Internal Server Error',
        message: 'internal error',
      })
    }
    if (e.statusCode >= 500) request.log.error({ err, code: e.code }, e.message)
    return sendAdminError(reply, e)
  })

  await fastify.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Sluice admin API',
        version: '1.0.0',
        description:
          'Manage Sluice rate-limit configs. Bearer JWT with scope ratelimit:read / ratelimit:write.',
      },
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
      security: [{ bearerAuth: [] }],
    },
  })

  const appIdOf = (request: FastifyRequest): string | undefined =>
    (request.params as { appId?: string }).appId
  const read = auth.guard(READ, { appId: appIdOf })
  const write = auth.guard(WRITE, { appId: appIdOf })
  const readAny = auth.guard(READ)
  const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 429: ErrorReply, 503: ErrorReply }
  const bodyLimit = opts.bodyLimit ?? 65_536
  const principal = (request: FastifyRequest): Principal => {
    const p = auth.principalOf(request)
    if (p === null) throw new AdminError('SLUICE_ERR_ADMIN_UNAUTHORIZED')
    return p
  }

  const openApiRoute = { schema: { hide: true } } as const
  api.get(
    '/openapi.json',
    opts.publicOpenApi === false ? { ...openApiRoute, onRequest: readAny } : openApiRoute,
    async () => fastify.swagger(),
  )

  api.get(
    '/configs',
    {
      onRequest: readAny,
      schema: {
        summary: 'List the appIds that have a config',
        tags: ['configs'],
        response: { 200: ListReply, ...errors },
      },
    },
    async (request) => {
      const p = principal(request)
      const all = await configs.list()
      return { appIds: all.filter((a) => auth.mayAccess(p, a)) }
    },
  )

  api.get(
    '/configs/:appId',
    {
      onRequest: read,
      schema: {
        summary: "An app's stored config, with its ETag",
        tags: ['configs'],
        params: AppIdParams,
        response: { 200: StoredConfig, 404: ErrorReply, ...errors },
      },
    },
    async (request, reply) => {
      const { appId } = request.params
      const stored = await configs.get(appId)
      if (stored === null) throw new AdminError('SLUICE_ERR_ADMIN_NOT_FOUND', `no config for appId=${appId}`)
      const config = storedConfigOf(stored)
      reply.header('etag', stored.etag)
      return toPlain(config)
    },
  )

  api.put(
    '/configs/:appId',
    {
      onRequest: write,
      bodyLimit,
      schema: {
        summary: "Validate and store an app's config (compare-and-set with If-Match), publish the change",
        tags: ['configs'],
        params: AppIdParams,
        headers: ConditionalHeaders,
        body: ConfigBody,
        response: { 200: StoredConfig, 412: ErrorReply, 413: ErrorReply, ...errors },
      },
    },
    async (request, reply) => {
      const { appId } = request.params
      const r = await configs.put(appId, request.body, {
        ...preconditionOf(request.headers),
        actor: actorOf(principal(request)),
      })
      return putOutcome(appId, r, reply, request)
    },
  )

  api.delete(
    '/configs/:appId',
    {
      onRequest: write,
      schema: {
        summary: "Delete an app's config (it falls back to the default); the default cannot be deleted",
        tags: ['configs'],
        params: AppIdParams,
        headers: ConditionalHeaders,
        response: { 204: Type204, 409: ErrorReply, 412: ErrorReply, ...errors },
      },
    },
    async (request, reply) => {
      const { appId } = request.params
      if (appId === DEFAULT_APP_ID) throw new AdminError('SLUICE_ERR_ADMIN_DEFAULT_UNDELETABLE')
      const { ifMatch } = preconditionOf(request.headers)
      const r = await configs.delete(appId, {
        ...(ifMatch === undefined ? {} : { ifMatch }),
        actor: actorOf(principal(request)),
      })
      if (!r.ok) {
        if (r.reason === 'default') throw new AdminError('SLUICE_ERR_ADMIN_DEFAULT_UNDELETABLE')
        throw preconditionFailed(r.currentEtag)
      }
      if (r.deleted) {
        if (!r.audited)
          request.log.error({ event: 'admin.audit_failed', appId }, 'change made but audit entry not written')
        request.log.info(
          { event: 'ratelimit.config_updated', appId, oldEtag: r.oldEtag, deleted: true },
          'config deleted',
        )
      }
      return reply.code(204).send()
    },
  )

  api.get(
    '/configs/:appId/effective',
    {
      onRequest: read,
      schema: {
        summary: 'The config requests of this appId are decided by now, and where it came from',
        tags: ['configs'],
        params: AppIdParams,
        response: { 200: EffectiveReply, 404: ErrorReply, ...errors },
      },
    },
    async (request) => {
      const { appId } = request.params
      if (opts.resolver !== undefined) {
        const r = await opts.resolver.resolve(appId)
        return { appId, source: r.source, etag: r.etag, config: toPlain(r.config) }
      }
      const own = await configs.get(appId)
      if (own?.config != null)
        return { appId, source: 'app' as const, etag: own.etag, config: toPlain(own.config) }
      const def = appId === DEFAULT_APP_ID ? own : await configs.get(DEFAULT_APP_ID)
      if (def?.config != null)
        return { appId, source: 'default' as const, etag: def.etag, config: toPlain(def.config) }
      const raw = serializeConfig(BUILT_IN_DEFAULT_CONFIG)
      return {
        appId,
        source: 'default' as const,
        etag: etagOf(raw),
        config: toPlain(BUILT_IN_DEFAULT_CONFIG),
      }
    },
  )

  api.get(
    '/configs/:appId/history',
    {
      onRequest: read,
      schema: {
        summary: "The app's last versions, newest first",
        tags: ['history'],
        params: AppIdParams,
        response: { 200: HistoryReply, ...errors },
      },
    },
    async (request) => {
      const { appId } = request.params
      const versions = await configs.history(appId)
      return {
        appId,
        versions: versions.map((v) => ({
          version: v.version,
          etag: v.etag,
          at: iso(v.at),
          by: v.by,
          action: v.action,
          from: v.from,
          config: v.config === null ? null : toPlain(v.config),
        })),
      }
    },
  )

  api.post(
    '/configs/:appId/rollback',
    {
      onRequest: write,
      bodyLimit,
      schema: {
        summary: 'Restore a version of the history (validated again, compare-and-set with If-Match)',
        tags: ['history'],
        params: AppIdParams,
        headers: ConditionalHeaders,
        body: RollbackBody,
        response: {
          200: StoredConfig,
          404: ErrorReply,
          409: ErrorReply,
          412: ErrorReply,
          413: ErrorReply,
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { appId } = request.params
      const r = await configs.rollback(appId, request.body.version, {
        ...preconditionOf(request.headers),
        actor: actorOf(principal(request)),
      })
      if (!r.ok && r.reason === 'invalid') {
        const detail = r.issues.map((i) => `${i.path} ${i.message}`).join('; ')
        throw new AdminError(
          'SLUICE_ERR_ADMIN_ROLLBACK_INVALID',
          `version ${request.body.version} fails the schema: ${detail}`,
          {
            details: { errors: r.issues },
          },
        )
      }
      return putOutcome(appId, r, reply, request)
    },
  )

  api.get(
    '/audit',
    {
      onRequest: readAny,
      schema: {
        summary: 'The audit log, newest first, paged with a cursor',
        tags: ['audit'],
        querystring: AuditQuery,
        response: { 200: AuditReply, ...errors },
      },
    },
    async (request) => {
      const p = principal(request)
      const { cursor, limit } = request.query
      const page = await configs.audit({
        ...(cursor === undefined ? {} : { cursor }),
        limit: limit ?? 50,
        appIds: p.appIds,
      })
      return {
        entries: page.entries.map((e) => ({ ...e, at: iso(e.at) })),
        nextCursor: page.nextCursor,
      }
    },
  )
}

const Type204 = { type: 'null', description: 'Deleted (or nothing to delete)' } as const

function checkOptions(opts: AdminPluginOptions): void {
  if (opts === null || typeof opts !== 'object') throw new AdminOptionsError('options are required')
  if (
    opts.redis === null ||
    typeof opts.redis !== 'object' ||
    typeof (opts.redis as { get?: unknown }).get !== 'function'
  ) {
    throw new AdminOptionsError('redis must be an ioredis Redis or Cluster client')
  }
  if (opts.jwt === undefined)
    throw new AdminOptionsError('jwt options are required ({ secret } or { publicKey })')
  if (
    opts.prefix !== undefined &&
    (typeof opts.prefix !== 'string' || !/^\/[A-Za-z0-9/_-]*$/.test(opts.prefix))
  ) {
    throw new AdminOptionsError(`prefix must be a path starting with / (got ${JSON.stringify(opts.prefix)})`)
  }
  if (opts.bodyLimit !== undefined && (!Number.isInteger(opts.bodyLimit) || opts.bodyLimit < 1024)) {
    throw new AdminOptionsError(`bodyLimit must be an integer >= 1024 (got ${String(opts.bodyLimit)})`)
  }
}

/**
 * The admin API (contract section 5): JWT-secured config routes under `prefix` (default
 * `/admin/v1`), history, rollback, audit and the OpenAPI document. Mount it on any Fastify instance.
 */
export const adminPlugin = fp(
  async (fastify: FastifyInstance, opts: AdminPluginOptions) => {
    checkOptions(opts)
    await fastify.register(admin, { ...opts, prefix: (opts.prefix ?? '/admin/v1').replace(/\/$/, '') })
  },
  { fastify: '5.x', name: '@sluice/admin-plugin' },
)
