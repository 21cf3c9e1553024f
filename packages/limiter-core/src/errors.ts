/**
 * Every error @sluice/limiter-core raises. Each has a stable `code` (`SLUICE_ERR_*`), a message and
 * the HTTP status a server should answer with when the error reaches a client. Every code has a row
 * in docs/errors.md (section "@sluice/limiter-core"); test/errors.test.ts keeps the two in sync.
 */

/** Base class of every Sluice error. */
export class SluiceError extends Error {
  /** Stable machine-readable code, `SLUICE_ERR_*`. */
  readonly code: string
  /** HTTP status to answer with when this error reaches a client. */
  readonly statusCode: number

  constructor(code: string, message: string, statusCode = 500, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.statusCode = statusCode
  }
}

/** The `kind` label of `sluice_store_errors_total`. */
export type StoreErrorKind = 'timeout' | 'connection' | 'script' | 'other'

/**
 * The store failed (Redis down, slow, or a script misbehaved): the fail mode decides the request.
 * Never answered as 429: it is the store that failed, not the client.
 */
export class SluiceStoreError extends SluiceError {
  readonly kind: StoreErrorKind

  constructor(
    kind: StoreErrorKind,
    message: string,
    options?: { cause?: unknown; code?: string; statusCode?: number },
  ) {
    super(options?.code ?? 'SLUICE_ERR_STORE', message, options?.statusCode ?? 503, options)
    this.kind = kind
  }
}

/** The store did not answer within its per-decision budget (`timeoutMs`, `REDIS_TIMEOUT_MS`). */
export class StoreTimeoutError extends SluiceStoreError {
  /** The budget that was exceeded, ms (0 when the client's own `commandTimeout` fired). */
  readonly timeoutMs: number
  constructor(timeoutMs: number, options?: { cause?: unknown }) {
    const message = timeoutMs > 0 ? `store did not answer within ${timeoutMs} ms` : 'store command timed out'
    super('timeout', message, {
      ...options,
      code: 'SLUICE_ERR_STORE_TIMEOUT',
    })
    this.timeoutMs = timeoutMs
  }
}

/** The Redis client is not connected (not `ready`), or the connection broke during the command. */
export class StoreConnectionError extends SluiceStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('connection', message, { ...options, code: 'SLUICE_ERR_STORE_CONNECTION' })
  }
}

/** A Lua script failed in Redis or returned a reply of the wrong shape. */
export class StoreScriptError extends SluiceStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('script', message, { ...options, code: 'SLUICE_ERR_STORE_SCRIPT', statusCode: 500 })
  }
}

/** A store or client was built with invalid options, or `decide` was called with an invalid argument. */
export class StoreOptionsError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_STORE_OPTIONS', message, 500)
  }
}

/**
 * The error code of a Redis error reply: its first word when that is an upper-case token
 * (`NOSCRIPT`, `ERR`, `BUSY`, `LOADING`, `CLUSTERDOWN`, `CROSSSLOT`, …), else null.
 * The one place where Redis error text is parsed.
 */
export function redisErrorCode(err: unknown): string | null {
  if (err === null || typeof err !== 'object') return null
  const message = (err as { message?: unknown }).message
  if (typeof message !== 'string') return null
  const m = /^([A-Z][A-Z0-9_-]*)(?:\s|$)/.exec(message)
  return m?.[1] ?? null
}

const CONNECTION_REPLY_CODES = new Set([
  'LOADING',
  'CLUSTERDOWN',
  'MASTERDOWN',
  'TRYAGAIN',
  'READONLY',
  'NOAUTH',
])
const CONNECTION_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ETIMEDOUT',
])

/**
 * Classify any error thrown by a Redis client (ioredis) into a `SluiceStoreError`;
 * a `SluiceStoreError` is returned unchanged. The original error is kept as `cause`.
 */
export function toStoreError(err: unknown): SluiceStoreError {
  if (err instanceof SluiceStoreError) return err
  const e = err instanceof Error ? err : new Error(String(err))
  const name = e.name
  const message = e.message
  const errno = (e as { code?: unknown }).code
  if (message === 'Command timed out' || name === 'CommandTimeoutDuringMaintenanceError') {
    return new StoreTimeoutError(0, { cause: e })
  }
  if (
    name === 'MaxRetriesPerRequestError' ||
    name === 'ClusterAllFailedError' ||
    name === 'AbortError' ||
    name === 'SocketTimeoutDuringMaintenanceError' ||
    (typeof errno === 'string' && CONNECTION_ERRNO.has(errno)) ||
    /enableOfflineQueue|Connection is closed|isn't writeable|isn't ready|Failed to refresh slots/i.test(
      message,
    )
  ) {
    return new StoreConnectionError(`store connection failed: ${message}`, { cause: e })
  }
  const replyCode = redisErrorCode(e)
  if (name === 'ReplyError' && replyCode !== null) {
    if (CONNECTION_REPLY_CODES.has(replyCode)) {
      return new StoreConnectionError(`store unavailable: ${message}`, { cause: e })
    }
    if (replyCode === 'BUSY') return new SluiceStoreError('other', `store busy: ${message}`, { cause: e })
    return new StoreScriptError(`store script failed: ${message}`, { cause: e })
  }
  return new SluiceStoreError('other', `store failed: ${message}`, { cause: e })
}

/** One broken rule of a config: the field (`limits[1].windowMs`) and the rule (`must be >= 1`). */
export interface ConfigValidationIssue {
  readonly path: string
  readonly message: string
}

/**
 * A rate-limit config is not valid JSON or breaks the schema (contract section 4). The message names
 * the source, the field and the rule: `appId=foo: limits[1].windowMs must be >= 1`; `errors` lists
 * every broken rule. A server answers 400.
 */
export class ConfigValidationError extends SluiceError {
  readonly source: string
  readonly errors: readonly ConfigValidationIssue[]

  constructor(source: string, errors: readonly ConfigValidationIssue[]) {
    const first = errors[0]
    const detail = errors.map((e) => `${e.path} ${e.message}`).join('; ')
    super('SLUICE_ERR_CONFIG_INVALID', `${source}: ${first === undefined ? 'invalid config' : detail}`, 400)
    this.source = source
    this.errors = Object.freeze([...errors])
  }
}

/** An appId does not match `^[A-Za-z0-9._:-]{1,128}$`. A server answers 400. */
export class InvalidAppIdError extends SluiceError {
  readonly appId: string
  constructor(appId: string) {
    super(
      'SLUICE_ERR_CONFIG_APP_ID',
      `invalid appId ${JSON.stringify(appId.slice(0, 140))}: must match ^[A-Za-z0-9._:-]{1,128}$`,
      400,
    )
    this.appId = appId
  }
}
