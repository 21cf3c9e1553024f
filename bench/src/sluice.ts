/**
 * Builders for the Sluice configurations (plugin and gateway), kept apart from server.ts so that
 * the peer configurations still run while a Sluice package is broken or missing.
 */
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sluiceLimiter from '@sluice/fastify-limiter'
import { createRedisClient, type LimitSpec, type RateLimitConfig } from '@sluice/limiter-core'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { ALLOWED_LIMIT, ATTACK_LIMIT, type BenchConfig } from './configs.js'
import type { Served } from './server.js'

/** The limits of a Sluice configuration: algorithm from the name, `-3` = three limits, `attack` = tiny limit. */
export function sluiceConfig(config: BenchConfig): RateLimitConfig {
  const { limit, windowMs } = config.path === 'attack' ? ATTACK_LIMIT : ALLOWED_LIMIT
  const alg = (['sliding-window', 'token-bucket', 'fixed-window'] as const).find((a) =>
    config.name.includes(a),
  )
  const algorithm = alg ?? 'sliding-log'
  const limits: LimitSpec[] = [{ name: 'per-second', algorithm, limit, windowMs }]
  if (/-3(-|$)/.test(config.name)) {
    // Two more limits that never bind, so the path stays "allowed" but every request is counted 3 times.
    limits.push({ name: 'per-10s', algorithm: 'sliding-log', limit, windowMs: windowMs * 10 })
    limits.push({ name: 'per-hour', algorithm: 'sliding-window', limit: 1e9, windowMs: 3_600_000 })
  }
  return { limits, failMode: 'local', shadow: false }
}

async function ready(client: Redis): Promise<void> {
  if (client.status === 'ready') return
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve())
    client.once('error', reject)
  })
}

interface MetricLike {
  get(): Promise<{ values: { value: number; labels: Record<string, string | number> }[] }>
}
interface WithSluice {
  sluice?: { metrics?: { registry?: { getSingleMetric(name: string): MetricLike | undefined } } }
}

/** `sluice_decisions_total` summed by `decision` (cumulative), from the plugin's registry. */
export async function decisionCounts(app: FastifyInstance): Promise<Record<string, number>> {
  const metric = (app as unknown as WithSluice).sluice?.metrics?.registry?.getSingleMetric(
    'sluice_decisions_total',
  )
  const out: Record<string, number> = {}
  if (metric === undefined) return out
  for (const v of (await metric.get()).values) {
    const k = String(v.labels['decision'] ?? '?')
    out[k] = (out[k] ?? 0) + v.value
  }
  return out
}

/** `sluice_decisions_total` by `decision`, scraped from the gateway's `/metrics` (the plugin lives in a scope). */
async function scrapeDecisions(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const m = /^sluice_decisions_total\{([^}]*)\}\s+(\S+)/.exec(line)
    const d = m?.[1] !== undefined ? /decision="([^"]+)"/.exec(m[1])?.[1] : undefined
    if (d !== undefined && m?.[2] !== undefined) out[d] = (out[d] ?? 0) + Number(m[2])
  }
  return out
}

/** `-batch` forces the store's tick batching on, `-nobatch` off; otherwise the plugin's default. */
function batchOption(config: BenchConfig): { batch?: boolean } {
  if (config.name.includes('-nobatch')) return { batch: false }
  if (config.name.includes('-batch')) return { batch: true }
  return {}
}

/** The plugin as a user would register it: a fail-fast client, per-app configs from Redis, default seeded. */
export async function buildSluicePlugin(
  app: FastifyInstance,
  config: BenchConfig,
  url: string,
): Promise<() => Promise<unknown>> {
  const redis = createRedisClient({
    url,
    timeoutMs: 1000,
    ...(config.name.endsWith('-autopipe') ? { redisOptions: { enableAutoPipelining: true } } : {}),
  }) as Redis
  await ready(redis)
  await app.register(sluiceLimiter, {
    redis,
    defaultConfig: sluiceConfig(config),
    timeoutMs: 1000,
    ...batchOption(config),
  })
  return () => redis.quit()
}

/** The gateway in demo mode (no UPSTREAM_URL), configured only by env, as `pnpm start` runs it. */
export async function serveGateway(config: BenchConfig, url: string): Promise<Served> {
  const { createApp, loadSettings } = await import('@sluice/gateway')
  const file = join(tmpdir(), `sluice-bench-${process.pid}-default.json`)
  writeFileSync(file, JSON.stringify(sluiceConfig(config)))
  const gateway = await createApp(
    loadSettings({
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: url,
      REDIS_TIMEOUT_MS: '1000',
      DEFAULT_CONFIG_FILE: file,
      LOG_LEVEL: config.name.endsWith('-loginfo') ? 'info' : 'warn',
    }),
  )
  const { url: listening } = await gateway.listen()
  return {
    port: Number(new URL(listening).port),
    close: () => gateway.close(),
    decisions: () => scrapeDecisions(Number(new URL(listening).port)),
  }
}
