/**
 * pino options of the gateway: JSON lines at `LOG_LEVEL`, with every place a secret could appear
 * redacted (authorization and cookie headers, passwords, JWT secrets, Redis URLs with credentials).
 */
import type { FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Settings } from './settings.js'

/** Paths pino censors in every log line. */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
  'res.headers["set-cookie"]',
  'password',
  '*.password',
  'redisPassword',
  '*.redisPassword',
  'adminJwtSecret',
  '*.adminJwtSecret',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'redisUrl',
  '*.redisUrl',
]

/** Fastify `logger` options for `settings`; `stream` (tests) replaces stdout. */
export function loggerOptions(
  settings: Settings,
  stream?: DestinationStream,
): FastifyServerOptions['logger'] {
  return {
    level: settings.logLevel,
    base: { service: 'sluice-gateway' },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    ...(stream !== undefined ? { stream } : {}),
  }
}

/** A URL with any password replaced, for log lines. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = 'redacted'
    return u.toString()
  } catch {
    return '[unparseable url]'
  }
}
