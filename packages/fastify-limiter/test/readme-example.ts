import sluiceLimiter from '@sluice/fastify-limiter'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

export async function buildServer(redisUrl: string) {
  // No offline queue and a per-command timeout: a Redis outage becomes a fast store failure.
  const redis = new Redis(redisUrl, { enableOfflineQueue: false, commandTimeout: 100 })
  const fastify = Fastify({ logger: { level: 'warn' } })
  fastify.addHook('onClose', async () => {
    redis.disconnect()
  })

  await fastify.register(sluiceLimiter, {
    redis, // decisions and per-app configs (rateLimitConfig:<appId>) live in this Redis
    appIdHeader: 'x-app-id',
    timeoutMs: 100,
    defaultConfig: {
      limits: [{ name: 'per-second', algorithm: 'sliding-log', limit: 10, windowMs: 1000 }],
      failMode: 'local',
      shadow: false,
    },
  })

  fastify.get('/hello', async (request) => ({
    hello: 'world',
    remaining: request.rateLimit?.decision?.limits[0]?.remaining,
  }))
  fastify.get('/healthz', { config: { rateLimit: false } }, async () => ({ ok: true }))
  fastify.post('/reports', { config: { rateLimit: { cost: 5 } } }, async () => ({ queued: true }))
  return fastify
}
