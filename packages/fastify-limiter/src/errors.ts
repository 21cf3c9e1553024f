/**
 * Every error @sluice/fastify-limiter raises or answers with. Each has a stable `code`
 * (`SLUICE_ERR_*`), a message and the HTTP status the plugin answers with. Every code has a row in
 * docs/errors.md (section "@sluice/fastify-limiter"); test/errors.test.ts keeps the two in sync.
 */
import { SluiceError } from '@sluice/limiter-core'

/** Codes of this package with their HTTP status and a default message (the docs table mirrors this). */
export const PLUGIN_ERRORS = {
  SLUICE_ERR_PLUGIN_OPTIONS: { statusCode: 500, message: 'invalid @sluice/fastify-limiter option' },
  SLUICE_ERR_PLUGIN_REGISTERED: {
    statusCode: 500,
    message: '@sluice/fastify-limiter is already registered in this Fastify instance',
  },
  SLUICE_ERR_INVALID_APP_ID: { statusCode: 400, message: 'invalid appId' },
  SLUICE_ERR_INVALID_COST: { statusCode: 400, message: 'cost must be an integer >= 1' },
  SLUICE_ERR_UNKNOWN_APP: { statusCode: 403, message: 'unknown appId' },
  SLUICE_ERR_RATE_LIMITED: { statusCode: 429, message: 'rate limit exceeded' },
  SLUICE_ERR_STORE_UNAVAILABLE: { statusCode: 503, message: 'rate-limit store unavailable' },
} as const

export type PluginErrorCode = keyof typeof PLUGIN_ERRORS

/** An error of this package; `statusCode` is the HTTP status the plugin answers with. */
export class SluicePluginError extends SluiceError {
  constructor(code: PluginErrorCode, message: string = PLUGIN_ERRORS[code].message) {
    super(code, message, PLUGIN_ERRORS[code].statusCode)
  }
}

/** Invalid plugin or route options (thrown at registration; the message names the option). */
export class PluginOptionsError extends SluicePluginError {
  constructor(message: string) {
    super('SLUICE_ERR_PLUGIN_OPTIONS', message)
  }
}
