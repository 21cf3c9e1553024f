/**
 * One benchmark server: `node dist/server.js <configuration> <redisUrl>`.
 *
 * Serves `GET /` (small JSON) on 127.0.0.1 with an ephemeral port and talks to the parent over IPC:
 * - sends `{ type: 'ready', port }` once listening;
 * - on `{ type: 'mark' }` records process.cpuUsage() and the Redis command counter;
 * - on `{ type: 'report' }` answers `{ type: 'report', cpuUs, redisCommands }` (deltas since the mark);
 * - on `{ type: 'close' }` closes the app and exits.
 *
 * Redis commands are counted on the client side by wrapping ioredis' `sendCommand` (one increment
 * per command written to the socket), so a Lua script's inner calls do not count, only round trips.
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { ALLOWED_LIMIT, ATTACK_LIMIT, type BenchConfig, findConfig } from './configs.js'

let redisCommands = 0
const originalSend = Redis.prototype.sendCommand
Redis.prototype.sendCommand = function (this: Redis, ...args: Parameters<Redis['sendCommand']>) {
  redisCommands++
  return originalSend.apply(this, args)
} as Redis['sendCommand']

const closers: (() => Promise<unknown>)[] = []

function appIdOf(headers: Record<string, string | string[] | undefined>, ip: string): string {
  const h = headers['x-app-id']
  return typeof h === 'string' ? h : `ip:${ip}`
}

function limitsFor(config: BenchConfig): { limit: number; windowMs: number } {
  return config.path === 'attack' ? ATTACK_LIMIT : ALLOWED_LIMIT
}

function peerRedis(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 1, enableAutoPipelining: false })
  closers.push(() => r.quit())
  return r
}

async function buildFastifyRateLimit(app: FastifyInstance, config: BenchConfig, url: string): Promise<void> {
  const { default: rateLimit } = await import('@fastify/rate-limit')
  const { limit, windowMs } = limitsFor(config)
  await app.register(rateLimit, {
    max: limit,
    timeWindow: windowMs,
    redis: peerRedis(url),
    skipOnError: false,
    keyGenerator: (req) => appIdOf(req.headers, req.ip),
  })
}

async function buildRateLimiterFlexible(
  app: FastifyInstance,
  config: BenchConfig,
  url: string,
): Promise<void> {
  const { RateLimiterRedis, RateLimiterRes } = await import('rate-limiter-flexible')
  const { limit, windowMs } = limitsFor(config)
  const limiter = new RateLimiterRedis({
    storeClient: peerRedis(url),
    points: limit,
    duration: Math.ceil(windowMs / 1000),
    keyPrefix: 'rlf',
    ...(config.name.endsWith('blockcache') ? { inMemoryBlockOnConsumed: limit + 1 } : {}),
  })
  app.addHook('onRequest', async (req, reply) => {
    const key = appIdOf(req.headers, req.ip)
    try {
      const res = await limiter.consume(key)
      reply.header('x-ratelimit-remaining', res.remainingPoints)
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err
      const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000))
      reply.code(429).header('retry-after', retryAfter)
      return reply.send({ statusCode: 429, error: 'Too Many Requests', message: 'rate limited' })
    }
  })
}

/** A listening benchmark server. */
export interface Served {
  readonly port: number
  close(): Promise<void>
  /** Cumulative Sluice decisions by outcome (`sluice_decisions_total`); absent for non-Sluice servers. */
  decisions?(): Promise<Record<string, number>>
}

async function listen(app: FastifyInstance): Promise<Served> {
  app.get('/', async () => ({ hello: 'world' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return { port, close: () => app.close(), decisions: () => decisionsOf(app) }
}

let decisionsOf = async (_app: FastifyInstance): Promise<Record<string, number>> => ({})

async function serve(config: BenchConfig, url: string): Promise<Served> {
  const app = Fastify({ logger: false })
  switch (config.limiter) {
    case 'bare':
      break
    case 'fastify-rate-limit':
      await buildFastifyRateLimit(app, config, url)
      break
    case 'rate-limiter-flexible':
      await buildRateLimiterFlexible(app, config, url)
      break
    case 'sluice-plugin': {
      const { buildSluicePlugin, decisionCounts } = await import('./sluice.js')
      closers.push(await buildSluicePlugin(app, config, url))
      decisionsOf = decisionCounts
      break
    }
    case 'sluice-gateway': {
      const { serveGateway } = await import('./sluice.js')
      return serveGateway(config, url)
    }
  }
  return listen(app)
}

async function main(): Promise<void> {
  const [name, url] = process.argv.slice(2)
  if (name === undefined || url === undefined || process.send === undefined) {
    throw new Error('usage: (forked) server.js <configuration> <redisUrl>')
  }
  const send = process.send.bind(process)
  const served = await serve(findConfig(name), url)
  let cpu = process.cpuUsage()
  let cmds = redisCommands
  let decisions: Record<string, number> = {}
  const decisionsNow = async (): Promise<Record<string, number>> => (await served.decisions?.()) ?? {}
  let session: Session | null = null
  process.on('message', async (msg: { type: string; file?: string }) => {
    if (msg.type === 'profile-start') {
      session = new Session()
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval: 100 })
      await session.post('Profiler.start')
      send({ type: 'profiling' })
    } else if (msg.type === 'profile-stop' && session !== null && msg.file !== undefined) {
      const { profile } = await session.post('Profiler.stop')
      session.disconnect()
      session = null
      await writeFile(msg.file, JSON.stringify(profile))
      send({ type: 'profiled' })
    } else if (msg.type === 'mark') {
      decisions = await decisionsNow()
      cpu = process.cpuUsage()
      cmds = redisCommands
      send({ type: 'marked' })
    } else if (msg.type === 'report') {
      const d = process.cpuUsage(cpu)
      const c = redisCommands - cmds
      const now = await decisionsNow()
      const delta: Record<string, number> = {}
      for (const [k, v] of Object.entries(now))
        if (v - (decisions[k] ?? 0) > 0) delta[k] = v - (decisions[k] ?? 0)
      send({ type: 'report', cpuUs: d.user + d.system, redisCommands: c, decisions: delta })
    } else if (msg.type === 'close') {
      void (async () => {
        await served.close().catch(() => undefined)
        for (const c of closers) await c().catch(() => undefined)
        process.exit(0)
      })()
    }
  })
  send({ type: 'ready', port: served.port })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
