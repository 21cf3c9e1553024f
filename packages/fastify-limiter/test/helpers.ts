import { type RateLimitConfig, type Store, serializeConfig } from '@sluice/limiter-core'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import { Registry } from 'prom-client'
import sluiceLimiter, { type SluiceLimiterOptions } from '../src/index.js'

export interface LogLine {
  level: number
  event?: string
  appId?: string | null
  reqId?: string
  msg?: string
  [k: string]: unknown
}

export interface TestApp {
  app: FastifyInstance
  logs: LogLine[]
  registry: Registry
  events(name: string): LogLine[]
}

/** A Fastify app with the plugin, a capture of its pino output, its own metrics registry and a `/` route. */
export async function buildApp(options: SluiceLimiterOptions = {}, level = 'debug'): Promise<TestApp> {
  const logs: LogLine[] = []
  const stream = { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) }
  const app = Fastify({ logger: { level, stream } })
  const registry = options.registry ?? new Registry()
  await app.register(sluiceLimiter, { registry, ...options })
  app.get('/', async (request) => ({ ok: true, outcome: request.rateLimit?.outcome ?? null }))
  app.get('/free', { config: { rateLimit: false } }, async () => ({ ok: true }))
  app.get(
    '/upload',
    {
      config: {
        rateLimit: { limits: [{ name: 'upload', algorithm: 'fixed-window', limit: 2, windowMs: 60_000 }] },
      },
    },
    async () => ({ ok: true }),
  )
  app.get('/heavy', { config: { rateLimit: { cost: 3 } } }, async () => ({ ok: true }))
  await app.ready()
  return { app, logs, registry, events: (name) => logs.filter((l) => l.event === name) }
}

/** Write an app's config the way the admin API stores it, and announce it. */
export async function putConfig(
  client: Redis | Cluster,
  appId: string,
  config: RateLimitConfig,
): Promise<void> {
  await client.set(`rateLimitConfig:${appId}`, serializeConfig(config))
  await client.publish('rateLimitConfig:updates', appId)
}

export function cfg(limit: number, windowMs: number, extra: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return {
    limits: [{ name: 'main', algorithm: 'sliding-log', limit, windowMs }],
    failMode: 'local',
    shadow: false,
    ...extra,
  }
}

/** Sum of a metric's samples whose labels include `labels`. */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = registry.getSingleMetric(name)
  if (m === undefined) return 0
  const { values } = await m.get()
  let sum = 0
  for (const v of values) {
    if (
      (v as { metricName?: string }).metricName !== undefined &&
      (v as { metricName?: string }).metricName !== name
    ) {
      continue
    }
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value
  }
  return sum
}

/** A store that counts calls to another. */
export function countingStore(inner: Store): Store & { calls: number } {
  const s = {
    kind: inner.kind,
    calls: 0,
    decide(subject: string, policy: Parameters<Store['decide']>[1], cost: number) {
      s.calls++
      return inner.decide(subject, policy, cost)
    },
    close: () => Promise.resolve(),
  }
  return s
}
