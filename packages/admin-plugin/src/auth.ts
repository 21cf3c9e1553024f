import { createPublicKey } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import { type CompiledPolicy, compilePolicy, MemoryStore, type Store } from '@sluice/limiter-core'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AdminError, AdminOptionsError } from './errors.js'

/** Scopes understood by Sluice. */
export type SluiceScope = 'ratelimit:read' | 'ratelimit:write' | 'ratelimit:check'

/** How admin tokens are verified. Give exactly one of `secret` and `publicKey`. */
export interface AdminJwtOptions {
  /** HS256 shared secret (at least 32 characters). Only HS256 tokens are then accepted. */
  readonly secret?: string
  /**
   * PEM public key (SPKI). An RSA key accepts only RS256 tokens; an EC P-256 key only ES256.
   * HS256 tokens (e.g. signed with this public key as secret) and `alg: none` are always refused.
   */
  readonly publicKey?: string
  /** Required `iss` (one of), checked when set. */
  readonly issuer?: string | readonly string[]
  /** Required `aud` (one of), checked when set. */
  readonly audience?: string | readonly string[]
  /** Leeway for `exp` / `nbf`, ms (default 0). */
  readonly clockToleranceMs?: number
  /** Longest accepted token, characters (default 8192); longer ones are refused unread. */
  readonly maxTokenLength?: number
}

/** Brute-force protection: failed authentications per client address. */
export interface BruteForceOptions {
  /** Failures allowed per window and address (default 20). */
  readonly maxFailures?: number
  /** Window, ms (default 60000). */
  readonly windowMs?: number
  /**
   * Where failures are counted (a `RedisStore` shares the count between pods). Default: an
   * in-process `MemoryStore` created (and closed) by the plugin.
   */
  readonly store?: Store
}

/** Options of `sluiceAuth` / `createAuthenticator`. */
export interface AuthOptions {
  readonly jwt: AdminJwtOptions
  /** `false` turns brute-force protection off (not recommended). */
  readonly bruteForce?: BruteForceOptions | false
  /** `realm` of `WWW-Authenticate` (default `sluice`). */
  readonly realm?: string
}

/** Who a verified token speaks for. */
export interface Principal {
  /** The token's `sub`, or null. */
  readonly sub: string | null
  readonly scopes: ReadonlySet<string>
  /** The `app_ids` claim; null when the token is not restricted. */
  readonly appIds: ReadonlySet<string> | null
  readonly claims: Readonly<Record<string, unknown>>
}

/** Options of one guard. */
export interface GuardOptions {
  /** The appId the request acts on (checked against `app_ids`); undefined: none. */
  readonly appId?: (request: FastifyRequest) => string | undefined
}

type Verify = (token: string) => unknown

interface FastJwtError {
  code?: unknown
  message?: unknown
}

/** The accepted algorithms of a key (pinned to its type). */
export function algorithmsFor(jwt: AdminJwtOptions): ['HS256'] | ['RS256'] | ['ES256'] {
  const hasSecret = jwt.secret !== undefined
  const hasKey = jwt.publicKey !== undefined
  if (hasSecret === hasKey) throw new AdminOptionsError('jwt: give exactly one of secret and publicKey')
  if (hasSecret) {
    if (typeof jwt.secret !== 'string' || jwt.secret.length < 32) {
      throw new AdminOptionsError('jwt.secret must be a string of at least 32 characters')
    }
    return ['HS256']
  }
  let key: ReturnType<typeof createPublicKey>
  try {
    key = createPublicKey(jwt.publicKey as string)
  } catch (err) {
    throw new AdminOptionsError(`jwt.publicKey is not a PEM public key (${(err as Error).message})`)
  }
  if (key.asymmetricKeyType === 'rsa') return ['RS256']
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return ['ES256']
  throw new AdminOptionsError(
    `jwt.publicKey must be an RSA or EC P-256 key (got ${key.asymmetricKeyType ?? 'unknown'})`,
  )
}

function list(v: string | readonly string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined
  return typeof v === 'string' ? [v] : [...v]
}

/** Create the token verifier through @fastify/jwt, registered in an isolated child scope (no decorators leak). */
async function createVerifier(fastify: FastifyInstance, jwt: AdminJwtOptions): Promise<Verify> {
  const algorithms = algorithmsFor(jwt)
  const allowedIss = list(jwt.issuer)
  const allowedAud = list(jwt.audience)
  const verify: Record<string, unknown> = {
    algorithms,
    requiredClaims: ['exp'],
    clockTolerance: jwt.clockToleranceMs ?? 0,
    cache: false,
  }
  if (allowedIss !== undefined) verify.allowedIss = allowedIss
  if (allowedAud !== undefined) verify.allowedAud = allowedAud
  let verifier: Verify | undefined
  await fastify.register(async (child) => {
    await child.register(fastifyJwt, {
      secret: jwt.secret !== undefined ? jwt.secret : { public: jwt.publicKey as string },
      verify,
    })
    const decorator = child.jwt
    verifier = (token) => decorator.verify(token)
  })
  if (verifier === undefined) throw new AdminOptionsError('jwt verifier could not be created')
  return verifier
}

const BEARER_RE = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)[ ]*$/i

/** Bounded map: address -> time (ms) until which it is refused without verifying. */
class BlockList {
  readonly #until = new Map<string, number>()
  readonly #max: number
  constructor(max: number) {
    this.#max = max
  }
  remaining(ip: string, now: number): number {
    const until = this.#until.get(ip)
    if (until === undefined) return 0
    if (until <= now) {
      this.#until.delete(ip)
      return 0
    }
    return until - now
  }
  block(ip: string, until: number): void {
    this.#until.delete(ip)
    this.#until.set(ip, until)
    if (this.#until.size > this.#max) {
      const oldest = this.#until.keys().next().value
      if (oldest !== undefined) this.#until.delete(oldest)
    }
  }
}

/**
 * Verifies bearer tokens and checks scopes and `app_ids`; answers 401 / 403 / 429 itself (JSON body
 * and `WWW-Authenticate`). Create one with `createAuthenticator()` or the `sluiceAuth` plugin.
 */
export class Authenticator {
  readonly #verify: Verify
  readonly #maxTokenLength: number
  readonly #realm: string
  readonly #store: Store | null
  readonly #ownsStore: boolean
  readonly #policy: CompiledPolicy | null
  readonly #blocked = new BlockList(10_000)
  readonly #principals = new WeakMap<FastifyRequest, Principal>()
  /** Called when the failure store fails (the request still gets its 401). Must not throw. */
  onStoreError: ((err: Error) => void) | undefined

  constructor(verify: Verify, options: AuthOptions) {
    this.#verify = verify
    this.#maxTokenLength = options.jwt.maxTokenLength ?? 8192
    this.#realm = (options.realm ?? 'sluice').replace(/["\\]/g, '')
    const bf = options.bruteForce
    if (bf === false) {
      this.#store = null
      this.#ownsStore = false
      this.#policy = null
    } else {
      const maxFailures = bf?.maxFailures ?? 20
      const windowMs = bf?.windowMs ?? 60_000
      if (!Number.isInteger(maxFailures) || maxFailures < 1) {
        throw new AdminOptionsError(
          `bruteForce.maxFailures must be an integer >= 1 (got ${String(maxFailures)})`,
        )
      }
      if (!Number.isInteger(windowMs) || windowMs < 1) {
        throw new AdminOptionsError(`bruteForce.windowMs must be an integer >= 1 (got ${String(windowMs)})`)
      }
      this.#policy = compilePolicy([
        { name: 'auth-failures', algorithm: 'fixed-window', limit: maxFailures, windowMs },
      ])
      this.#ownsStore = bf?.store === undefined
      this.#store = bf?.store ?? new MemoryStore()
    }
  }

  /** The principal a guard attached to `request`, or null. */
  principalOf(request: FastifyRequest): Principal | null {
    return this.#principals.get(request) ?? null
  }

  /**
   * Verify the request's bearer token. Throws an `AdminError` (401 / 429) when there is none, it is
   * invalid, or the address is blocked after too many failures.
   */
  async authenticate(request: FastifyRequest): Promise<Principal> {
    const cached = this.#principals.get(request)
    if (cached !== undefined) return cached
    const ip = request.ip
    const wait = this.#blocked.remaining(ip, Date.now())
    if (wait > 0) throw this.#tooMany(wait)
    try {
      const principal = this.#verifyRequest(request)
      this.#principals.set(request, principal)
      return principal
    } catch (err) {
      if (err instanceof AdminError && err.statusCode === 401) {
        const blockedFor = await this.#recordFailure(ip)
        if (blockedFor > 0) throw this.#tooMany(blockedFor)
      }
      throw err
    }
  }

  /** Throws 403 unless `principal` has `scope` (and may act on `appId`, when given). */
  authorize(principal: Principal, scope: SluiceScope, appId?: string): void {
    if (!principal.scopes.has(scope)) {
      throw new AdminError('SLUICE_ERR_ADMIN_FORBIDDEN', `token lacks scope ${scope}`, {
        headers: {
          'www-authenticate': `Bearer realm="${this.#realm}", error="insufficient_scope", scope="${scope}"`,
        },
      })
    }
    if (appId !== undefined && !this.mayAccess(principal, appId)) {
      throw new AdminError('SLUICE_ERR_ADMIN_FORBIDDEN', 'token is not allowed for this appId (app_ids)', {
        headers: { 'www-authenticate': `Bearer realm="${this.#realm}", error="insufficient_scope"` },
      })
    }
  }

  /** True when `principal` may act on `appId` (`app_ids` absent, or listing it; `default` only when listed). */
  mayAccess(principal: Principal, appId: string): boolean {
    return principal.appIds === null || principal.appIds.has(appId)
  }

  /**
   * A hook (`onRequest` or `preHandler`) that authenticates, checks `scope` (and `app_ids` when
   * `options.appId` is given) and answers 401 / 403 / 429 itself.
   */
  guard(scope: SluiceScope, options: GuardOptions = {}) {
    return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      try {
        const principal = await this.authenticate(request)
        this.authorize(principal, scope, options.appId?.(request))
        return undefined
      } catch (err) {
        if (err instanceof AdminError) return sendAdminError(reply, err)
        throw err
      }
    }
  }

  /** Close the failure store when this authenticator created it. */
  async close(): Promise<void> {
    if (this.#ownsStore && this.#store !== null) await this.#store.close()
  }

  #verifyRequest(request: FastifyRequest): Principal {
    const header = request.headers.authorization
    if (header === undefined || header === '') {
      throw new AdminError(
        'SLUICE_ERR_ADMIN_UNAUTHORIZED',
        'missing bearer token (Authorization: Bearer <jwt>)',
        {
          headers: { 'www-authenticate': `Bearer realm="${this.#realm}"` },
        },
      )
    }
    if (header.length > this.#maxTokenLength + 16) throw this.#invalid('token too large')
    const m = BEARER_RE.exec(header)
    const token = m?.[1]
    if (token === undefined) throw this.#invalid('Authorization header must be "Bearer <jwt>"')
    if (token.length > this.#maxTokenLength) throw this.#invalid('token too large')
    let payload: unknown
    try {
      payload = this.#verify(token)
    } catch (err) {
      const e = err as FastJwtError
      if (e.code === 'FAST_JWT_EXPIRED') {
        throw new AdminError('SLUICE_ERR_ADMIN_TOKEN_EXPIRED', 'token expired', {
          headers: {
            'www-authenticate': `Bearer realm="${this.#realm}", error="invalid_token", error_description="token expired"`,
          },
        })
      }
      if (e.code === 'FAST_JWT_INACTIVE') throw this.#invalid('token not yet valid (nbf)')
      throw this.#invalid(reasonOf(e.code))
    }
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      throw this.#invalid('token payload must be a JSON object')
    }
    const claims = payload as Record<string, unknown>
    if (typeof claims.exp !== 'number') throw this.#invalid('token must carry a numeric exp')
    const scope = claims.scope
    if (scope !== undefined && typeof scope !== 'string') throw this.#invalid('scope claim must be a string')
    const rawApps = claims.app_ids
    let appIds: ReadonlySet<string> | null = null
    if (rawApps !== undefined) {
      if (!Array.isArray(rawApps) || rawApps.some((a) => typeof a !== 'string')) {
        throw this.#invalid('app_ids claim must be an array of strings')
      }
      appIds = new Set(rawApps as string[])
    }
    return Object.freeze({
      sub: typeof claims.sub === 'string' ? claims.sub : null,
      scopes: new Set(typeof scope === 'string' ? scope.split(' ').filter((s) => s !== '') : []),
      appIds,
      claims: Object.freeze({ ...claims }),
    })
  }

  #invalid(description: string): AdminError {
    return new AdminError('SLUICE_ERR_ADMIN_INVALID_TOKEN', `invalid token: ${description}`, {
      headers: {
        'www-authenticate': `Bearer realm="${this.#realm}", error="invalid_token", error_description="${description.replace(/["\\]/g, "'")}"`,
      },
    })
  }

  #tooMany(waitMs: number): AdminError {
    const seconds = Math.max(1, Math.ceil(waitMs / 1000))
    return new AdminError('SLUICE_ERR_ADMIN_TOO_MANY_AUTH_FAILURES', undefined, {
      headers: { 'retry-after': String(seconds) },
      details: { retryAfterMs: waitMs },
    })
  }

  /** Count one failure of `ip`; returns ms to refuse it for when it is now over the limit, else 0. */
  async #recordFailure(ip: string): Promise<number> {
    if (this.#store === null || this.#policy === null) return 0
    try {
      const d = await this.#store.decide(`admin-auth:ip:${ip}`, this.#policy, 1)
      if (d.allowed) return 0
      const wait = Math.max(1, d.retryAfterMs)
      this.#blocked.block(ip, Date.now() + wait)
      return wait
    } catch (err) {
      try {
        this.onStoreError?.(err instanceof Error ? err : new Error(String(err)))
      } catch {
        // hooks must not throw
      }
      return 0
    }
  }
}

function reasonOf(code: unknown): string {
  switch (code) {
    case 'FAST_JWT_MALFORMED':
    case 'FAST_JWT_INVALID_TYPE':
      return 'malformed token'
    case 'FAST_JWT_MISSING_SIGNATURE':
      return 'unsigned tokens (alg none) are refused'
    case 'FAST_JWT_INVALID_ALGORITHM':
      return 'algorithm not accepted'
    case 'FAST_JWT_INVALID_SIGNATURE':
      return 'bad signature'
    case 'FAST_JWT_MISSING_REQUIRED_CLAIM':
      return 'exp claim is required'
    case 'FAST_JWT_CLAIM_VALUE_INVALID':
    case 'FAST_JWT_INVALID_CLAIM_VALUE':
      return 'iss or aud not accepted'
    case 'FAST_JWT_INVALID_CLAIM_TYPE':
      return 'a claim has the wrong type'
    default:
      return 'verification failed'
  }
}

/** The JSON answer of an admin error: `{ statusCode, code, error, message, ... }`. */
export function adminErrorBody(err: AdminError): Record<string, unknown> {
  return {
    ...err.details,
    statusCode: err.statusCode,
    code: err.code,
    error: STATUS_TEXT[err.statusCode] ?? 'Error',
    message: err.message,
  }
}

/** Send `err` with its status, headers and JSON body. */
export function sendAdminError(reply: FastifyReply, err: AdminError): FastifyReply {
  reply.code(err.statusCode)
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v)
  return reply.send(adminErrorBody(err))
}

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

/**
 * Build an `Authenticator` bound to `fastify` (registers @fastify/jwt in an isolated child scope).
 * Call it inside a plugin; close it with `authenticator.close()` (an onClose hook is added).
 */
export async function createAuthenticator(
  fastify: FastifyInstance,
  options: AuthOptions,
): Promise<Authenticator> {
  if (
    options === null ||
    typeof options !== 'object' ||
    options.jwt === null ||
    typeof options.jwt !== 'object'
  ) {
    throw new AdminOptionsError('jwt options are required ({ secret } or { publicKey })')
  }
  const verify = await createVerifier(fastify, options.jwt)
  const auth = new Authenticator(verify, options)
  auth.onStoreError = (err) =>
    fastify.log.error({ event: 'admin.auth_store_error', err: err.message }, 'auth failure store failed')
  fastify.addHook('onClose', async () => {
    await auth.close()
  })
  return auth
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Set by the `sluiceAuth` plugin. */
    sluiceAuth: Authenticator
  }
}

/**
 * Decorates the instance with `sluiceAuth` (an `Authenticator`), e.g. to protect the gateway's
 * `POST /v1/check`: `{ onRequest: app.sluiceAuth.guard('ratelimit:check') }` or `requireScope(...)`.
 */
export const sluiceAuth = fp(
  async (fastify: FastifyInstance, options: AuthOptions) => {
    if (fastify.hasDecorator('sluiceAuth')) throw new AdminOptionsError('sluiceAuth is already registered')
    fastify.decorate('sluiceAuth', await createAuthenticator(fastify, options))
  },
  { fastify: '5.x', name: '@sluice/admin-plugin:auth' },
)

/**
 * A hook that needs a token with `scope`, verified by the `sluiceAuth` registered on the instance
 * (or a parent): `app.post('/v1/check', { onRequest: requireScope('ratelimit:check') }, handler)`.
 */
export function requireScope(scope: SluiceScope, options: GuardOptions = {}) {
  const guards = new WeakMap<Authenticator, ReturnType<Authenticator['guard']>>()
  return async function sluiceRequireScope(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | undefined> {
    const auth = (request.server as Partial<FastifyInstance>).sluiceAuth
    if (auth === undefined)
      throw new AdminOptionsError('requireScope() needs the sluiceAuth plugin registered')
    let guard = guards.get(auth)
    if (guard === undefined) {
      guard = auth.guard(scope, options)
      guards.set(auth, guard)
    }
    return guard(request, reply)
  }
}
