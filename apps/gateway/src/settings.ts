/**
 * The gateway's typed environment schema (contract section 2). `loadSettings(env)` reads every
 * variable once, applies its default, and either returns `Settings` or throws a `SettingsError`
 * naming the first invalid variable. An empty value counts as unset (Kubernetes manifests often
 * set optional variables to `""`).
 */
import { createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { BUILT_IN_DEFAULT_CONFIG, parseConfigJson, type RateLimitConfig } from '@sluice/limiter-core'
import { SettingsError } from './errors.js'

/** pino levels accepted by `LOG_LEVEL`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** One `host:port` of a Redis Cluster seed list. */
export interface ClusterNode {
  readonly host: string
  readonly port: number
}

/** Everything the gateway is configured by, parsed and validated. */
export interface Settings {
  /** `PORT`: the main listener's port. */
  readonly port: number
  /** `HOST`: the listeners' address. */
  readonly host: string
  /** `ADMIN_PORT`: when set, the admin API is served only on this second listener. */
  readonly adminPort: number | null
  /** `REDIS_URL`: a standalone Redis (`redis://` or `rediss://`). */
  readonly redisUrl: string | null
  /** `REDIS_CLUSTER_NODES`: a Redis Cluster seed list; wins over `redisUrl`. */
  readonly redisClusterNodes: readonly ClusterNode[] | null
  /** `REDIS_PASSWORD`: overrides a password in the URL. Never logged. */
  readonly redisPassword: string | null
  /** `REDIS_TIMEOUT_MS`: per-command budget. */
  readonly redisTimeoutMs: number
  /** `UPSTREAM_URL`: where allowed requests are proxied; null: demo mode. */
  readonly upstreamUrl: string | null
  /** `APP_ID_HEADER`, lower-cased. */
  readonly appIdHeader: string
  /** `DEFAULT_CONFIG_FILE`: path of a JSON file holding the default config; null: the built-in default. */
  readonly defaultConfigFile: string | null
  /** The default config: read from `defaultConfigFile` and validated, or the built-in default. */
  readonly defaultConfig: RateLimitConfig
  /** `CONFIG_CACHE_TTL_MS`. */
  readonly configCacheTtlMs: number
  /** `UNKNOWN_APP_POLICY`. */
  readonly unknownAppPolicy: 'default' | 'reject'
  /** `ADMIN_JWT_SECRET`: HS256 secret. Never logged. */
  readonly adminJwtSecret: string | null
  /** `ADMIN_JWT_PUBLIC_KEY`: PEM public key (RS256/ES256). */
  readonly adminJwtPublicKey: string | null
  /** `ADMIN_JWT_ISSUER`. */
  readonly adminJwtIssuer: string | null
  /** `ADMIN_JWT_AUDIENCE`. */
  readonly adminJwtAudience: string | null
  /** `LOG_LEVEL`. */
  readonly logLevel: LogLevel
  /** `TRUST_PROXY`: Fastify `trustProxy` (boolean, hop count, or comma-separated addresses/CIDRs). */
  readonly trustProxy: boolean | number | string
}

type Parser<T> = (raw: string, name: string) => T

/** One environment variable: its default (as written in the environment) and what it means. */
export interface EnvVar {
  readonly name: string
  /** The default as an env value; undefined: unset. */
  readonly default: string | undefined
  readonly description: string
  /** The value is a secret: never logged nor echoed in an error message. */
  readonly secret?: boolean
}

function fail(name: string, reason: string): never {
  throw new SettingsError(name, reason)
}

function intIn(min: number, max: number): Parser<number> {
  return (raw, name) => {
    if (!/^\d+$/.test(raw)) fail(name, `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`)
    const n = Number(raw)
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      fail(name, `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`)
    }
    return n
  }
}

const parsePortOrZero = intIn(0, 65535)

function parseHost(raw: string, name: string): string {
  if (isIP(raw) !== 0) return raw
  if (/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(raw)) return raw
  return fail(name, `must be an IP address or a host name, got ${JSON.stringify(raw)}`)
}

function parseRedisUrl(raw: string, name: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return fail(name, 'must be a redis:// or rediss:// URL')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    fail(name, `must be a redis:// or rediss:// URL, got protocol ${JSON.stringify(url.protocol)}`)
  }
  if (url.hostname === '') fail(name, 'must name a host')
  return raw
}

function parseClusterNodes(raw: string, name: string): ClusterNode[] {
  const nodes: ClusterNode[] = []
  for (const part of raw.split(',')) {
    const item = part.trim()
    if (item === '') continue
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(item)
    const host = m?.[1] ?? m?.[2]
    const port = Number(m?.[3])
    if (!m || host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
      fail(name, `must be a comma-separated list of host:port, got ${JSON.stringify(item)}`)
    }
    nodes.push({ host, port })
  }
  if (nodes.length === 0) fail(name, 'must list at least one host:port')
  return nodes
}

function parseUpstream(raw: string, name: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return fail(name, `must be an http:// or https:// URL, got ${JSON.stringify(raw)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    fail(name, `must be an http:// or https:// URL, got protocol ${JSON.stringify(url.protocol)}`)
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    fail(name, 'must be an origin (scheme://host[:port]) without a path, query or fragment')
  }
  if (url.username !== '' || url.password !== '') fail(name, 'must not carry credentials')
  return url.origin
}

function parseHeaderName(raw: string, name: string): string {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(raw)) {
    fail(name, `must be an HTTP header name, got ${JSON.stringify(raw)}`)
  }
  return raw.toLowerCase()
}

function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (raw, name) => {
    if (!(values as readonly string[]).includes(raw)) {
      fail(name, `must be one of ${values.join(', ')}, got ${JSON.stringify(raw)}`)
    }
    return raw as T
  }
}

function parsePublicKey(raw: string, name: string): string {
  const pem = raw.includes('\\n') && !raw.includes('\n') ? raw.replace(/\\n/g, '\n') : raw
  try {
    const key = createPublicKey(pem)
    const type = key.asymmetricKeyType
    if (type !== 'rsa' && type !== 'ec') fail(name, `must be an RSA or EC public key, got ${type}`)
  } catch (err) {
    if (err instanceof SettingsError) throw err
    fail(name, 'must be a PEM-encoded public key (-----BEGIN PUBLIC KEY-----)')
  }
  return pem
}

function parseSecret(raw: string, name: string): string {
  if (raw.startsWith('CHANGE-ME'))
    fail(name, 'is still the placeholder value of the example Secret; set a real secret')
  if (raw.length < 32) fail(name, 'must be at least 32 characters long')
  return raw
}

function parseTrustProxy(raw: string, name: string): boolean | number | string {
  const lower = raw.toLowerCase()
  if (lower === 'true') return true
  if (lower === 'false') return false
  if (/^\d+$/.test(raw)) return intIn(0, 1000)(raw, name)
  const parts = raw.split(',').map((p) => p.trim())
  for (const p of parts) {
    const [addr, bits, extra] = p.split('/')
    const ok =
      addr !== undefined &&
      extra === undefined &&
      (isIP(addr) !== 0 || ['loopback', 'linklocal', 'uniquelocal'].includes(addr)) &&
      (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (isIP(addr) === 6 ? 128 : 32)))
    if (!ok) {
      fail(
        name,
        `must be true, false, a hop count, or comma-separated IP addresses/CIDRs, got ${JSON.stringify(p)}`,
      )
    }
  }
  return parts.join(',')
}

const str: Parser<string> = (raw) => raw

/** The schema: every variable of contract section 2 with its default, description and parser. */
const SCHEMA = {
  PORT: { default: '3000', description: 'port of the main listener', parse: parsePortOrZero },
  HOST: { default: '0.0.0.0', description: 'address of the listeners', parse: parseHost },
  ADMIN_PORT: {
    default: undefined,
    description: 'when set, the admin API is served only on this second listener, not on PORT',
    parse: parsePortOrZero,
  },
  REDIS_URL: {
    default: undefined,
    description:
      'redis:// or rediss:// (TLS) URL of a standalone Redis; unset (with REDIS_CLUSTER_NODES): embedded store',
    parse: parseRedisUrl,
  },
  REDIS_CLUSTER_NODES: {
    default: undefined,
    description: 'comma-separated host:port seed list of a Redis Cluster; wins over REDIS_URL',
    parse: parseClusterNodes,
  },
  REDIS_PASSWORD: {
    default: undefined,
    description: 'Redis password (from a Secret); overrides one in the URL',
    parse: str,
    secret: true,
  },
  REDIS_TIMEOUT_MS: {
    default: '100',
    description: 'per-command budget in ms; past it the decision is a store failure',
    parse: intIn(1, 60_000),
  },
  UPSTREAM_URL: {
    default: undefined,
    description:
      'http(s) URL allowed requests are proxied to; unset: demo mode (200 JSON describing the decision)',
    parse: parseUpstream,
  },
  APP_ID_HEADER: {
    default: 'x-app-id',
    description: 'request header naming the calling application',
    parse: parseHeaderName,
  },
  DEFAULT_CONFIG_FILE: {
    default: undefined,
    description: 'JSON file (a mounted ConfigMap) holding the default config; unset: the built-in default',
    parse: str,
  },
  CONFIG_CACHE_TTL_MS: {
    default: '5000',
    description: 'how long a pod may serve a config without re-reading Redis',
    parse: intIn(1, 86_400_000),
  },
  UNKNOWN_APP_POLICY: {
    default: 'default',
    description:
      'default: an appId without a config uses the default config; reject: such a request gets 403',
    parse: oneOf(['default', 'reject'] as const),
  },
  ADMIN_JWT_SECRET: {
    default: undefined,
    description: 'HS256 secret for admin tokens (at least 32 characters)',
    parse: parseSecret,
    secret: true,
  },
  ADMIN_JWT_PUBLIC_KEY: {
    default: undefined,
    description:
      'PEM public key (RS256/ES256) for admin tokens; with neither key the admin API is not mounted',
    parse: parsePublicKey,
  },
  ADMIN_JWT_ISSUER: {
    default: undefined,
    description: 'expected `iss` of admin tokens, checked when set',
    parse: str,
  },
  ADMIN_JWT_AUDIENCE: {
    default: undefined,
    description: 'expected `aud` of admin tokens, checked when set',
    parse: str,
  },
  LOG_LEVEL: { default: 'info', description: 'pino log level', parse: oneOf(LOG_LEVELS) },
  TRUST_PROXY: {
    default: 'false',
    description: 'Fastify trustProxy: true, false, a hop count, or comma-separated addresses/CIDRs',
    parse: parseTrustProxy,
  },
} as const satisfies Record<
  string,
  { default: string | undefined; description: string; parse: Parser<unknown>; secret?: boolean }
>

type Schema = typeof SCHEMA
type EnvName = keyof Schema

/** Every variable, in documentation order. */
export const ENV_VARS: readonly EnvVar[] = Object.entries(SCHEMA).map(([name, v]) => ({
  name,
  default: v.default,
  description: v.description,
  ...('secret' in v ? { secret: v.secret } : {}),
}))

function read<N extends EnvName>(env: NodeJS.ProcessEnv, name: N): ReturnType<Schema[N]['parse']> | null {
  const spec = SCHEMA[name]
  const given = env[name]
  const raw = given === undefined || given.trim() === '' ? spec.default : given.trim()
  if (raw === undefined) return null
  // Secrets are parsed untrimmed-of-content but never echoed: their parsers do not quote the value.
  return spec.parse(name === 'REDIS_PASSWORD' && given !== undefined ? given : raw, name) as ReturnType<
    Schema[N]['parse']
  >
}

function required<T>(v: T | null, name: string): T {
  if (v === null) return fail(name, 'is required')
  return v
}

/** Parse and validate the gateway's environment. Throws a `SettingsError` naming the first bad variable. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const port = required(read(env, 'PORT'), 'PORT')
  const adminPort = read(env, 'ADMIN_PORT')
  if (adminPort !== null && adminPort !== 0 && adminPort === port) {
    fail('ADMIN_PORT', `must differ from PORT (${port})`)
  }
  const adminJwtSecret = read(env, 'ADMIN_JWT_SECRET')
  const adminJwtPublicKey = read(env, 'ADMIN_JWT_PUBLIC_KEY')
  if (adminJwtSecret !== null && adminJwtPublicKey !== null) {
    fail('ADMIN_JWT_PUBLIC_KEY', 'set only one of ADMIN_JWT_SECRET and ADMIN_JWT_PUBLIC_KEY')
  }
  const defaultConfigFile = read(env, 'DEFAULT_CONFIG_FILE')
  return {
    port,
    host: required(read(env, 'HOST'), 'HOST'),
    adminPort,
    redisUrl: read(env, 'REDIS_URL'),
    redisClusterNodes: read(env, 'REDIS_CLUSTER_NODES'),
    redisPassword: read(env, 'REDIS_PASSWORD'),
    redisTimeoutMs: required(read(env, 'REDIS_TIMEOUT_MS'), 'REDIS_TIMEOUT_MS'),
    upstreamUrl: read(env, 'UPSTREAM_URL'),
    appIdHeader: required(read(env, 'APP_ID_HEADER'), 'APP_ID_HEADER'),
    defaultConfigFile,
    defaultConfig:
      defaultConfigFile === null ? BUILT_IN_DEFAULT_CONFIG : readDefaultConfig(defaultConfigFile),
    configCacheTtlMs: required(read(env, 'CONFIG_CACHE_TTL_MS'), 'CONFIG_CACHE_TTL_MS'),
    unknownAppPolicy: required(read(env, 'UNKNOWN_APP_POLICY'), 'UNKNOWN_APP_POLICY'),
    adminJwtSecret,
    adminJwtPublicKey,
    adminJwtIssuer: read(env, 'ADMIN_JWT_ISSUER'),
    adminJwtAudience: read(env, 'ADMIN_JWT_AUDIENCE'),
    logLevel: required(read(env, 'LOG_LEVEL'), 'LOG_LEVEL'),
    trustProxy: required(read(env, 'TRUST_PROXY'), 'TRUST_PROXY'),
  }
}

function readDefaultConfig(path: string): RateLimitConfig {
  let raw: string
  try {
    raw = readFileSync(path, 'utf8')
  } catch (err) {
    return fail(
      'DEFAULT_CONFIG_FILE',
      `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    )
  }
  try {
    return parseConfigJson(raw, path)
  } catch (err) {
    return fail('DEFAULT_CONFIG_FILE', `${(err as Error).message}`)
  }
}

/** Whether the settings name a Redis (else the embedded in-process store is used). */
export function usesRedis(s: Settings): boolean {
  return s.redisClusterNodes !== null || s.redisUrl !== null
}

/** Whether a JWT key is configured (then the admin API is mounted and /v1/check needs a token). */
export function hasJwtKey(s: Settings): boolean {
  return s.adminJwtSecret !== null || s.adminJwtPublicKey !== null
}
