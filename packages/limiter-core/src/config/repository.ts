import type { Cluster, Redis } from 'ioredis'
import { InvalidAppIdError } from '../errors.js'
import type { RateLimitConfig } from '../types.js'
import { etagOf, isValidAppId, parseConfig, serializeConfig } from './schema.js'

/** A standalone ioredis client or a Redis Cluster client. */
export type RedisLike = Redis | Cluster

/** Prefix of every config key (contract section 3). */
export const CONFIG_KEY_PREFIX = 'rateLimitConfig:'
/** The appId whose config serves every app without one of its own. */
export const DEFAULT_APP_ID = 'default'
/** Pub/sub channel; message = the appId whose config changed (`default` included). */
export const CONFIG_UPDATES_CHANNEL = 'rateLimitConfig:updates'

/** `rateLimitConfig:<appId>`. */
export function configKey(appId: string): string {
  return CONFIG_KEY_PREFIX + appId
}

/** A stored config value as it is in Redis, and its strong ETag. */
export interface StoredConfig {
  readonly raw: string
  readonly etag: string
}

/** What `put` stored. */
export interface PutResult extends StoredConfig {
  readonly config: RateLimitConfig
}

/** True for a Redis Cluster client. */
export function isCluster(client: RedisLike): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true
}

function checkAppId(appId: string): void {
  if (!isValidAppId(appId)) throw new InvalidAppIdError(appId)
}

/**
 * Read and write configs in Redis (`rateLimitConfig:<appId>`, contract section 3). Writes publish the
 * appId on `rateLimitConfig:updates` so every resolver drops its cached entry at once. Uses only
 * single-key commands, so it works on standalone Redis and Redis Cluster alike. Never closes `client`.
 */
export class ConfigRepository {
  readonly client: RedisLike

  constructor(client: RedisLike) {
    this.client = client
  }

  /** The stored value and its ETag, or null when the app has no config. The value is not validated. */
  async get(appId: string): Promise<StoredConfig | null> {
    checkAppId(appId)
    const raw = await this.client.get(configKey(appId))
    return raw === null ? null : { raw, etag: etagOf(raw) }
  }

  /**
   * Validate `config` (throws `ConfigValidationError` naming `appId=<appId>`), store its canonical
   * JSON, then PUBLISH the appId. Returns what was stored.
   */
  async put(appId: string, config: unknown): Promise<PutResult> {
    checkAppId(appId)
    const parsed = parseConfig(config, `appId=${appId}`)
    const raw = serializeConfig(parsed)
    await this.client.set(configKey(appId), raw)
    await this.publish(appId)
    return { raw, etag: etagOf(raw), config: parsed }
  }

  /** Delete the app's config and PUBLISH the appId; true when there was one. */
  async delete(appId: string): Promise<boolean> {
    checkAppId(appId)
    const n = await this.client.del(configKey(appId))
    await this.publish(appId)
    return n > 0
  }

  /** Tell every resolver that `appId`'s config changed (after a write made by other means). */
  async publish(appId: string): Promise<void> {
    await this.client.publish(CONFIG_UPDATES_CHANNEL, appId)
  }

  /**
   * Every appId that has a config (`default` included), sorted. SCANs `rateLimitConfig:*`; on a
   * Cluster, every master node. Keys whose suffix is not a valid appId are skipped.
   */
  async list(): Promise<string[]> {
    const nodes: Redis[] = isCluster(this.client) ? this.client.nodes('master') : [this.client]
    const found = new Set<string>()
    await Promise.all(
      nodes.map(async (node) => {
        let cursor = '0'
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', `${CONFIG_KEY_PREFIX}*`, 'COUNT', 500)
          cursor = next
          for (const key of keys) {
            const appId = key.slice(CONFIG_KEY_PREFIX.length)
            if (isValidAppId(appId)) found.add(appId)
          }
        } while (cursor !== '0')
      }),
    )
    return [...found].sort()
  }

  /**
   * Store `config` as `rateLimitConfig:default` only when that key is absent (`SET NX`): an operator's
   * edit is never overwritten. True when it was written (then `default` is published).
   */
  async ensureDefault(config: RateLimitConfig): Promise<boolean> {
    const raw = serializeConfig(parseConfig(config, `appId=${DEFAULT_APP_ID}`))
    const res = await this.client.set(configKey(DEFAULT_APP_ID), raw, 'NX')
    if (res !== 'OK') return false
    await this.publish(DEFAULT_APP_ID)
    return true
  }
}
