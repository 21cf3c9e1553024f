/**
 * The benchmark configurations. Metadata only (no heavy imports): `run.ts` reads it to plan
 * rounds; `server.ts` builds the matching Fastify app.
 */

/** Which request path a configuration exercises. */
export type BenchPath = 'none' | 'allowed' | 'attack'

export interface BenchConfig {
  /** Unique name, passed to `server.js` on the command line. */
  readonly name: string
  /** Which product the configuration measures (groups rows in the report). */
  readonly limiter:
    | 'bare'
    | 'fastify-rate-limit'
    | 'rate-limiter-flexible'
    | 'sluice-plugin'
    | 'sluice-gateway'
  readonly path: BenchPath
  /** One line for the report. */
  readonly description: string
  /** Needs Redis. */
  readonly redis: boolean
  /** Experiment: run only when named with `--only`. */
  readonly optional?: boolean
}

/** Every allowed-path request carries one of these appIds (autocannon cycles through them). */
export const ALLOWED_APP_IDS: readonly string[] = Array.from({ length: 10 }, (_, i) => `bench-${i}`)
/** Every attack-path request carries this appId. */
export const ATTACK_APP_ID = 'attacker'

/**
 * Allowed path: far above the load (each of the 10 subjects sees about a tenth of the traffic,
 * i.e. well under 2000 requests per second). 10000 is the sliding-log maximum of the schema.
 */
export const ALLOWED_LIMIT = { limit: 10000, windowMs: 1000 } as const
/** Under attack: the first request of the run is admitted, every later one blocked. */
export const ATTACK_LIMIT = { limit: 1, windowMs: 600_000 } as const

export const CONFIGS: readonly BenchConfig[] = [
  { name: 'bare', limiter: 'bare', path: 'none', description: 'bare Fastify, no rate limiter', redis: false },
  {
    name: 'frl-redis',
    limiter: 'fastify-rate-limit',
    path: 'allowed',
    description: '@fastify/rate-limit, Redis store',
    redis: true,
  },
  {
    name: 'frl-redis-attack',
    limiter: 'fastify-rate-limit',
    path: 'attack',
    description: '@fastify/rate-limit, Redis store, 429 path',
    redis: true,
  },
  {
    name: 'rlf-redis',
    limiter: 'rate-limiter-flexible',
    path: 'allowed',
    description: 'rate-limiter-flexible RateLimiterRedis in onRequest',
    redis: true,
  },
  {
    name: 'rlf-redis-attack',
    limiter: 'rate-limiter-flexible',
    path: 'attack',
    description: 'rate-limiter-flexible RateLimiterRedis, 429 path',
    redis: true,
  },
  {
    name: 'rlf-redis-attack-blockcache',
    limiter: 'rate-limiter-flexible',
    path: 'attack',
    description: 'rate-limiter-flexible RateLimiterRedis + inMemoryBlockOnConsumed, 429 path',
    redis: true,
  },
  {
    name: 'sluice-sliding-log',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, sliding-log, 1 limit',
    redis: true,
  },
  {
    name: 'sluice-sliding-window',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, sliding-window, 1 limit',
    redis: true,
  },
  {
    name: 'sluice-token-bucket',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, token-bucket, 1 limit',
    redis: true,
  },
  {
    name: 'sluice-fixed-window',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, fixed-window, 1 limit',
    redis: true,
  },
  {
    name: 'sluice-sliding-log-3',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, sliding-log, 3 limits',
    redis: true,
  },
  {
    name: 'sluice-sliding-log-batch',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, sliding-log, 1 limit, batch: true (one script call per tick)',
    redis: true,
    optional: true,
  },
  {
    name: 'sluice-sliding-log-nobatch',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, sliding-log, 1 limit, batch: false (one EVALSHA per decision)',
    redis: true,
    optional: true,
  },
  {
    name: 'sluice-sliding-log-3-batch',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, sliding-log, 3 limits, batch: true',
    redis: true,
    optional: true,
  },
  {
    name: 'sluice-sliding-log-3-nobatch',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, sliding-log, 3 limits, batch: false',
    redis: true,
    optional: true,
  },
  {
    name: 'sluice-sliding-log-autopipe',
    limiter: 'sluice-plugin',
    path: 'allowed',
    description: 'Sluice plugin, sliding-log, 1 limit, ioredis enableAutoPipelining (experiment)',
    redis: true,
  },
  {
    name: 'sluice-sliding-log-attack',
    limiter: 'sluice-plugin',
    path: 'attack',
    description: 'Sluice plugin, sliding-log, 429 path',
    redis: true,
  },
  {
    name: 'gateway',
    limiter: 'sluice-gateway',
    path: 'allowed',
    description: 'Sluice gateway, demo mode, default config',
    redis: true,
  },
  {
    name: 'gateway-attack',
    limiter: 'sluice-gateway',
    path: 'attack',
    description: 'Sluice gateway, demo mode, 429 path',
    redis: true,
  },
  {
    name: 'gateway-attack-loginfo',
    limiter: 'sluice-gateway',
    path: 'attack',
    description: 'Sluice gateway, 429 path, LOG_LEVEL=info (the default: one log line per blocked request)',
    redis: true,
    optional: true,
  },
  {
    name: 'gateway-loginfo',
    limiter: 'sluice-gateway',
    path: 'allowed',
    description: 'Sluice gateway, default config, LOG_LEVEL=info (the default)',
    redis: true,
    optional: true,
  },
]

export function findConfig(name: string): BenchConfig {
  const c = CONFIGS.find((x) => x.name === name)
  if (c === undefined) throw new Error(`unknown benchmark configuration ${name}`)
  return c
}
