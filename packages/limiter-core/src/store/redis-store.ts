import type { ConnectionOptions } from 'node:tls'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import {
  redisErrorCode,
  StoreConnectionError,
  StoreOptionsError,
  StoreTimeoutError,
  toStoreError,
} from '../errors.js'
import { DECIDE_SCRIPT, type LuaScript } from '../generated/scripts.js'
import type { CompiledPolicy, Decision, Store } from '../types.js'
import { parseDecision } from './decision.js'
import { checkDecideArgs, checkPrefix, counterKey, DEFAULT_PREFIX } from './keys.js'

/** A standalone or Cluster ioredis client. */
export type RedisClient = Redis | Cluster

/** Default per-decision budget, ms (`REDIS_TIMEOUT_MS`). */
export const DEFAULT_TIMEOUT_MS = 100

/** Options of `RedisStore`. */
export interface RedisStoreOptions {
  /**
   * The client to run the decide script on. Build it with `createRedisClient` (offline queue off,
   * bounded reconnect), or pass your own: the store never closes a client it was given.
   */
  readonly client: RedisClient
  /** Counter key prefix (default `rl`); keys are `<prefix>:{<subject>}:<name>:<alg>:<windowMs>`. */
  readonly prefix?: string
  /** Per-decision budget in ms (default 100); past it `decide` rejects with `StoreTimeoutError`. */
  readonly timeoutMs?: number
}

/**
 * Decides on Redis: one EVALSHA of decide.lua per decision, whatever the number of limits (all keys
 * share the `{subject}` hash tag: one Cluster slot). Falls back to EVAL when Redis answers NOSCRIPT
 * (restart, failover, SCRIPT FLUSH). Never queues: a client that is not `ready` fails at once.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const
  readonly client: RedisClient
  readonly prefix: string
  readonly timeoutMs: number

  constructor(options: RedisStoreOptions) {
    this.client = options.client
    if (
      this.client === null ||
      typeof this.client !== 'object' ||
      typeof this.client.evalsha !== 'function'
    ) {
      throw new StoreOptionsError('RedisStore needs an ioredis client (Redis or Cluster) as `client`')
    }
    this.prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX)
    this.timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  }

  async decide(subject: string, policy: CompiledPolicy, cost: number): Promise<Decision> {
    checkDecideArgs(subject, cost)
    const client = this.client
    if (client.status !== 'ready') {
      throw new StoreConnectionError(`store connection is not ready (status: ${client.status})`)
    }
    const keys = policy.keySuffixes.map((s) => counterKey(this.prefix, subject, s))
    const reply = await withTimeout(
      runScript(client, DECIDE_SCRIPT, keys, [cost, ...policy.argv]),
      this.timeoutMs,
    )
    return parseDecision(reply, policy)
  }

  /** The store never created its client, so there is nothing to close. */
  close(): Promise<void> {
    return Promise.resolve()
  }
}

/**
 * EVALSHA `script`; on NOSCRIPT (detected by the reply's error code, not by matching text), EVAL it,
 * which also loads it for the next EVALSHA. Other errors are classified by `toStoreError`.
 */
export async function runScript(
  client: RedisClient,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await client.evalsha(script.sha1, keys.length, ...keys, ...args)
  } catch (err) {
    if (redisErrorCode(err) !== 'NOSCRIPT') throw toStoreError(err)
  }
  try {
    return await client.eval(script.source, keys.length, ...keys, ...args)
  } catch (err) {
    throw toStoreError(err)
  }
}

/** Race `p` against an unref'd timer; past `timeoutMs` reject with `StoreTimeoutError`. */
export function withTimeout<T>(p: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreTimeoutError(timeoutMs)), timeoutMs)
    timer.unref()
    p.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(toStoreError(err))
      },
    )
  })
}

function checkTimeout(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new StoreOptionsError(`timeoutMs must be > 0, got ${String(ms)}`)
  return ms
}

/** ioredis options Sluice passes through (the legacy reply mapping only). */
export type ClientOptions = Omit<RedisOptions, 'replyMapping'>

/** Options of `createRedisClient`. */
export interface CreateRedisClientOptions {
  /** `redis://` or `rediss://` (TLS) URL of a standalone Redis (`REDIS_URL`). */
  readonly url?: string
  /** `host:port` seeds of a Redis Cluster (`REDIS_CLUSTER_NODES`); wins over `url`. */
  readonly clusterNodes?: readonly string[]
  /** Password (`REDIS_PASSWORD`); overrides one in the URL. */
  readonly password?: string
  /** Per-command budget, ms (`REDIS_TIMEOUT_MS`, default 100): ioredis `commandTimeout`. */
  readonly timeoutMs?: number
  /** TLS: `true` for defaults, or node:tls options. `rediss://` URLs turn it on by themselves. */
  readonly tls?: boolean | ConnectionOptions
  /** Reconnect backoff cap, ms (default 2000); the client retries forever, so it recovers alone. */
  readonly maxBackoffMs?: number
  /** Extra ioredis options, applied last (tests, tuning). */
  readonly redisOptions?: ClientOptions
}

/** Reconnect delay after `times` failed attempts: min(50 * 2^times, cap) ms. */
export function reconnectBackoff(times: number, capMs = 2000): number {
  return Math.min(50 * 2 ** Math.min(times, 16), capMs)
}

/**
 * An ioredis client that fails fast: offline queue off (a command while disconnected fails at once
 * instead of waiting and replaying into the wrong window), one retry per request, `commandTimeout`,
 * and a bounded exponential reconnect backoff that never gives up. A Cluster when `clusterNodes` is
 * given, else a standalone client on `url` (default `redis://127.0.0.1:6379`).
 */
export function createRedisClient(options: CreateRedisClientOptions = {}): RedisClient {
  const timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  const cap = options.maxBackoffMs ?? 2000
  const tls = options.tls === true ? {} : options.tls === false ? undefined : options.tls
  const common: ClientOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(1000, timeoutMs * 10),
    retryStrategy: (times) => reconnectBackoff(times, cap),
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(tls !== undefined ? { tls } : {}),
  }
  const nodes = options.clusterNodes?.filter((n) => n.trim() !== '')
  if (nodes !== undefined && nodes.length > 0) {
    const seeds = nodes.map(parseHostPort)
    const { retryStrategy: _r, enableOfflineQueue: _q, ...perNode } = { ...common, ...options.redisOptions }
    return new Cluster(seeds, {
      enableOfflineQueue: false,
      enableReadyCheck: true,
      clusterRetryStrategy: (times) => reconnectBackoff(times, cap),
      slotsRefreshTimeout: Math.max(1000, timeoutMs * 10),
      redisOptions: perNode,
    })
  }
  const url = options.url ?? 'redis://127.0.0.1:6379'
  if (!/^rediss?:\/\//i.test(url)) {
    throw new StoreOptionsError(
      `Redis URL must start with redis:// or rediss://, got ${JSON.stringify(redact(url))}`,
    )
  }
  return new Redis(url, { ...common, ...options.redisOptions })
}

function parseHostPort(s: string): { host: string; port: number } {
  const m = /^\s*\[?([^\]\s]+?)\]?:(\d{1,5})\s*$/.exec(s)
  const port = m ? Number(m[2]) : Number.NaN
  if (!m || port < 1 || port > 65535) {
    throw new StoreOptionsError(`cluster node must be host:port, got ${JSON.stringify(s)}`)
  }
  return { host: m[1] as string, port }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

/**
 * Resolve when `client` is `ready`, reject after `timeoutMs` (e.g. at start, before the first
 * decision; `decide` itself never waits for a connection).
 */
export function waitUntilReady(client: RedisClient, timeoutMs = 5000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise<void>((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      client.off('ready', onReady)
      reject(new StoreConnectionError(`Redis not ready within ${timeoutMs} ms (status: ${client.status})`))
    }, timeoutMs)
    timer.unref()
    client.once('ready', onReady)
  })
}
