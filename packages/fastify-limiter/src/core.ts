/**
 * The one place where the plugin constructs core objects (stores, resolver) from its options.
 */
import {
  type ConfigResolver,
  createConfigResolver,
  MemoryStore,
  RedisStore,
  type ResolverHooks,
  type Store,
} from '@sluice/limiter-core'
import type { Cluster, Redis } from 'ioredis'
import type { NormalizedOptions } from './options.js'

/** A Redis store over a client the plugin was given (the store never closes the client). */
export function createRedisStore(
  client: Redis | Cluster,
  timeoutMs: number,
  batch: boolean | { readonly maxBatch?: number } = false,
): Store {
  return new RedisStore({ client, timeoutMs, batch })
}

/** An in-process store (the default store without Redis, and the store of `failMode: 'local'`). */
export function createMemoryStore(): Store {
  return new MemoryStore()
}

/** The config resolver the plugin builds from `redis` (it creates, and closes, its own subscriber). */
export function createResolver(
  opts: NormalizedOptions,
  client: Redis | Cluster,
  hooks: ResolverHooks,
): ConfigResolver {
  return createConfigResolver({
    client,
    cacheTtlMs: opts.cacheTtlMs,
    timeoutMs: opts.timeoutMs,
    hooks,
    ...(opts.defaultConfig === undefined ? {} : { defaultConfig: opts.defaultConfig }),
  })
}
