/**
 * Every error @sluice/gateway raises. Each has a stable `code` (`SLUICE_ERR_GATEWAY_*`), a message
 * and the HTTP status the gateway answers with when the error reaches a client (0: never reaches a
 * client, it stops the process at start). Every code has a row in docs/errors.md (section
 * "@sluice/gateway"); test/errors.test.ts keeps the two in sync.
 */

/** Every gateway error code with its HTTP status and a one-line description (docs/errors.md). */
export const GATEWAY_ERRORS = {
  SLUICE_ERR_GATEWAY_ENV: { statusCode: 0, message: 'an environment variable has an invalid value' },
  SLUICE_ERR_GATEWAY_DEFAULT_CONFIG: {
    statusCode: 0,
    message: 'DEFAULT_CONFIG_FILE cannot be read or is not a valid config',
  },
  SLUICE_ERR_GATEWAY_UPSTREAM_UNAVAILABLE: { statusCode: 502, message: 'the upstream could not be reached' },
  SLUICE_ERR_GATEWAY_UPSTREAM_TIMEOUT: { statusCode: 504, message: 'the upstream did not answer in time' },
  SLUICE_ERR_GATEWAY_NOT_READY: { statusCode: 503, message: 'the gateway is not ready to serve' },
  SLUICE_ERR_GATEWAY_CHECK_BODY: { statusCode: 400, message: 'the body of POST /v1/check is invalid' },
} as const satisfies Record<string, { statusCode: number; message: string }>

/** A gateway error code. */
export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS

/** Base class of the gateway's errors. */
export class GatewayError extends Error {
  /** Stable machine-readable code. */
  readonly code: GatewayErrorCode
  /** HTTP status to answer with (0: a start-up error that never reaches a client). */
  readonly statusCode: number

  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.statusCode = GATEWAY_ERRORS[code].statusCode
  }
}

/** An environment variable is invalid; `variable` names it, the message says why. */
export class SettingsError extends GatewayError {
  readonly variable: string

  constructor(variable: string, reason: string, options?: { cause?: unknown }) {
    super(
      variable === 'DEFAULT_CONFIG_FILE' ? 'SLUICE_ERR_GATEWAY_DEFAULT_CONFIG' : 'SLUICE_ERR_GATEWAY_ENV',
      `${variable}: ${reason}`,
      options,
    )
    this.variable = variable
  }
}
