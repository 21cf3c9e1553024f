/**
 * The gateway's Redis connection, built by the core's `createRedisClient`: a Cluster client when
 * `REDIS_CLUSTER_NODES` is set (it wins), else a standalone client from `REDIS_URL`;
 * `REDIS_PASSWORD` overrides a password in the URL; offline queue off; every command bounded by
 * `REDIS_TIMEOUT_MS`.
 */
import { createRedisClient } from '@sluice/limiter-core'
import type { Cluster, Redis } from 'ioredis'
import type { Settings } from './settings.js'

export type RedisClient = Redis | Cluster

/** Build (and start connecting) the client the settings name; null when they name no Redis. */
export function connectRedis(settings: Settings): RedisClient | null {
  if (settings.redisClusterNodes === null && settings.redisUrl === null) return null
  return createRedisClient({
    ...(settings.redisClusterNodes !== null
      ? { clusterNodes: settings.redisClusterNodes.map((n) => `${n.host}:${n.port}`) }
      : { url: settings.redisUrl ?? '' }),
    ...(settings.redisPassword !== null ? { password: settings.redisPassword } : {}),
    timeoutMs: settings.redisTimeoutMs,
  }) as RedisClient
}

/** Close a client without waiting on a dead server (QUIT, then disconnect after a short bound). */
export async function closeRedis(client: RedisClient): Promise<void> {
  const timer = setTimeout(() => client.disconnect(), 500)
  timer.unref()
  try {
    if (client.status === 'ready') await client.quit()
    else client.disconnect()
  } catch {
    client.disconnect()
  } finally {
    clearTimeout(timer)
  }
}
