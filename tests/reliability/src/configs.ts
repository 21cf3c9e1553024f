/**
 * Write configs straight into Redis the way an operator would by hand (contract section 3):
 * `SET rateLimitConfig:<appId>` then `PUBLISH rateLimitConfig:updates <appId>`.
 */
import type { Cluster, Redis } from 'ioredis'

export interface ConfigLimit {
  name: string
  algorithm: 'sliding-log' | 'sliding-window' | 'token-bucket' | 'fixed-window'
  limit: number
  windowMs: number
}

export interface ConfigJson {
  limits: ConfigLimit[]
  failMode?: 'open' | 'closed' | 'local'
  shadow?: boolean
}

export async function putConfig(redis: Redis | Cluster, appId: string, config: ConfigJson): Promise<void> {
  await redis.set(`rateLimitConfig:${appId}`, JSON.stringify(config))
  await redis.publish('rateLimitConfig:updates', appId)
}

/** Wait until `check()` resolves true (polling), or throw after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<number> {
  const t0 = Date.now()
  for (;;) {
    try {
      if (await check()) return Date.now() - t0
    } catch {
      // not yet
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`not ${what} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
