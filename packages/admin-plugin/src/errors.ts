/**
 * Every error @sluice/admin-plugin raises. Each has a stable `code` (`SLUICE_ERR_ADMIN_*`), a message
 * and the HTTP status it is answered with. Every code has a row in docs/errors.md (section
 * "@sluice/admin-plugin"); test/errors.test.ts keeps the two in sync.
 */
import { SluiceError } from '@sluice/limiter-core'

/** The registry of codes: code -> [HTTP status, message template]. */
export const ADMIN_ERRORS = {
  SLUICE_ERR_ADMIN_OPTIONS: [500, 'invalid admin plugin options'],
  SLUICE_ERR_ADMIN_UNAUTHORIZED: [401, 'missing bearer token'],
  SLUICE_ERR_ADMIN_INVALID_TOKEN: [401, 'invalid bearer token'],
  SLUICE_ERR_ADMIN_TOKEN_EXPIRED: [401, 'bearer token expired'],
  SLUICE_ERR_ADMIN_FORBIDDEN: [403, 'token lacks the required scope or appId'],
  SLUICE_ERR_ADMIN_TOO_MANY_AUTH_FAILURES: [429, 'too many failed authentications from this address'],
  SLUICE_ERR_ADMIN_BAD_REQUEST: [400, 'invalid request'],
  SLUICE_ERR_ADMIN_INVALID_APP_ID: [400, 'invalid appId'],
  SLUICE_ERR_ADMIN_INVALID_CONFIG: [400, 'invalid config'],
  SLUICE_ERR_ADMIN_NOT_FOUND: [404, 'no config for this appId'],
  SLUICE_ERR_ADMIN_VERSION_NOT_FOUND: [404, 'no such version in the history'],
  SLUICE_ERR_ADMIN_DEFAULT_UNDELETABLE: [409, 'the default config cannot be deleted'],
  SLUICE_ERR_ADMIN_ROLLBACK_INVALID: [409, 'the version no longer passes the schema'],
  SLUICE_ERR_ADMIN_PRECONDITION_FAILED: [412, 'If-Match does not match the current ETag'],
  SLUICE_ERR_ADMIN_BODY_TOO_LARGE: [413, 'request body too large'],
  SLUICE_ERR_ADMIN_UNSUPPORTED_MEDIA_TYPE: [415, 'request body must be application/json'],
  SLUICE_ERR_ADMIN_STORED_CONFIG_INVALID: [500, 'the stored config fails the schema'],
  SLUICE_ERR_ADMIN_STORE_UNAVAILABLE: [503, 'Redis is unavailable'],
  SLUICE_ERR_ADMIN_INTERNAL: [500, 'internal error'],
} as const satisfies Record<string, readonly [number, string]>

export type AdminErrorCode = keyof typeof ADMIN_ERRORS

/** An error of the admin API; `headers` are sent with the answer (e.g. `WWW-Authenticate`). */
export class AdminError extends SluiceError {
  override readonly code: AdminErrorCode
  readonly headers: Readonly<Record<string, string>>
  /** Extra JSON fields of the answer (e.g. `errors`, `currentEtag`). */
  readonly details: Readonly<Record<string, unknown>>

  constructor(
    code: AdminErrorCode,
    message?: string,
    options: { headers?: Record<string, string>; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    const [status, fallback] = ADMIN_ERRORS[code]
    super(
      code,
      message ?? fallback,
      status,
      options.cause === undefined ? undefined : { cause: options.cause },
    )
    this.code = code
    this.headers = Object.freeze({ ...options.headers })
    this.details = Object.freeze({ ...options.details })
  }
}

/** Invalid options given to `adminPlugin` / `sluiceAuth` (thrown at registration). */
export class AdminOptionsError extends AdminError {
  constructor(message: string) {
    super('SLUICE_ERR_ADMIN_OPTIONS', `@sluice/admin-plugin: ${message}`)
  }
}
