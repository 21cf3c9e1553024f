import type { ConnectionOptions } from 'node:tls'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import {
  redisErrorCode,
  StoreConnectionError,
  StoreOptionsError,
  StoreScriptError,
  StoreTimeoutError,
  toStoreError,
} from '../errors.js'
import { DECIDE_BATCH_SCRIPT, DECIDE_SCRIPT, type LuaScript } from '../generated/scripts.js'
import type { CompiledPolicy, Decision, Store } from '../types.js'
import { parseDecision } from './decision.js'
import { checkDecideArgs, checkPrefix, counterKey, DEFAULT_PREFIX } from './keys.js'
import { keySlot } from './slot.js'

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
  /**
   * Batch the decisions made in one event-loop tick into one script call (decide-batch.lua): they
   * are queued until `setImmediate` (or until `maxBatch` are waiting), grouped by the Cluster hash
   * slot of their `{subject}` (one group on a standalone Redis), and each group is one EVALSHA that
   * decides them one after the other, exactly as separate calls would. A failure or timeout of the
   * call rejects every decision of that group with the store error; the `timeoutMs` budget counts
   * from the `decide` call, queueing included. Default `false` (one EVALSHA per decision).
   */
  readonly batch?: boolean | BatchOptions
}

/** Options of `RedisStore`'s `batch`. */
export interface BatchOptions {
  /** Most decisions in one script call (default 128); a full group is sent at once. */
  readonly maxBatch?: number
}

/** Default `batch.maxBatch`. */
export const DEFAULT_MAX_BATCH = 128
/** Most (subject, policy) key lists kept by a store (each a few short strings). */
const KEY_CACHE_SIZE = 4096

/** The counter keys (and Cluster slot) of one subject under one policy, computed once. */
interface SubjectKeys {
  readonly policy: CompiledPolicy
  readonly keys: readonly string[]
  readonly slot: number
}

interface Pending {
  readonly entry: SubjectKeys
  readonly cost: number
  /** The decision's deadline on the Redis clock, ms (0: none). */
  readonly deadline: number
  readonly resolve: (d: Decision) => void
  readonly reject: (e: unknown) => void
}

interface Group {
  readonly items: Pending[]
  /** performance.now() of the first decision queued: the group's budget counts from it. */
  readonly since: number
  /** Date.now() of the first decision queued (to learn the Redis clock offset). */
  readonly sentAt: number
}

/**
 * Decides on Redis: one EVALSHA of decide.lua per decision, whatever the number of limits (all keys
 * share the `{subject}` hash tag: one Cluster slot), or with `batch`, one EVALSHA of
 * decide-batch.lua per tick and slot. Falls back to EVAL when Redis answers NOSCRIPT (restart,
 * failover, SCRIPT FLUSH). Never queues on the client: a client that is not `ready` fails at once.
 */
export class RedisStore implements Store {
  readonly kind = 'redis' as const
  readonly client: RedisClient
  readonly prefix: string
  readonly timeoutMs: number
  /** Most decisions per script call, or 0 when not batching. */
  readonly maxBatch: number
  /** True when the client's own `commandTimeout` already bounds a call within `timeoutMs`. */
  readonly clientBoundsTimeout: boolean
  readonly #keys = new Map<string, SubjectKeys>()
  readonly #groups = new Map<number, Group>()
  #scheduled = false
  readonly #cluster: boolean
  /**
   * Per hash slot (0 on standalone): Redis clock minus this process's clock, ms, learned from every
   * reply. It maps a decision's timeout budget onto the Redis clock as the scripts' deadline, so a
   * call that reaches Redis after its caller gave up (a partition heals, a paused Redis resumes)
   * counts nothing. Starts at 0 (clocks in sync); one reply corrects it.
   */
  readonly #clockOffset = new Map<number, number>()

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
    this.maxBatch = checkBatch(options.batch)
    this.#cluster = this.client instanceof Cluster
    this.clientBoundsTimeout = clientBounds(this.client, this.timeoutMs)
  }

  decide(subject: string, policy: CompiledPolicy, cost: number): Promise<Decision> {
    try {
      checkDecideArgs(subject, cost)
    } catch (err) {
      return Promise.reject(err)
    }
    const client = this.client
    if (client.status !== 'ready') {
      return Promise.reject(
        new StoreConnectionError(`store connection is not ready (status: ${client.status})`),
      )
    }
    const entry = this.#entry(subject, policy)
    const sentAt = Date.now()
    const deadline = this.#deadline(entry.slot, sentAt)
    if (this.maxBatch > 0) return this.#enqueue(entry, cost, deadline, sentAt)
    const tail = [...entry.keys, cost, deadline, ...policy.argv]
    const done = (reply: unknown): Decision => {
      this.#learnClock(entry.slot, reply, sentAt)
      return parseDecision(reply, policy, this.timeoutMs)
    }
    if (this.clientBoundsTimeout) {
      // The client's commandTimeout bounds the EVALSHA; only a NOSCRIPT fallback needs a timer.
      return runScriptTail(client, DECIDE_SCRIPT, entry.keys.length, tail, this.timeoutMs).then(done)
    }
    return withTimeout(runScriptTail(client, DECIDE_SCRIPT, entry.keys.length, tail, 0), this.timeoutMs).then(
      done,
    )
  }

  /**
   * The deadline on the Redis clock of a decision started at `sentAt` (local ms): the budget minus
   * a margin (a fifth of it, at least 2 ms), so that a call Redis runs just before its deadline can
   * still answer before the caller gives up. A call run in that last stretch answers as a timeout.
   */
  #deadline(slot: number, sentAt: number): number {
    const margin = Math.max(2, Math.ceil(this.timeoutMs / 5))
    return Math.floor(sentAt + (this.#clockOffset.get(slot) ?? 0) + this.timeoutMs - margin)
  }

  /** Learn the Redis clock's offset from a reply's `now_ms` (taken halfway through the round trip). */
  #learnClock(slot: number, reply: unknown, sentAt: number): void {
    if (!Array.isArray(reply)) return
    const redisNow = reply[0]
    if (typeof redisNow !== 'number') return
    this.#clockOffset.set(slot, redisNow - (sentAt + Date.now()) / 2)
  }

  /** The cached keys of `subject` under `policy` (a bounded map; the oldest entry goes first). */
  #entry(subject: string, policy: CompiledPolicy): SubjectKeys {
    const cache = this.#keys
    const hit = cache.get(subject)
    if (hit !== undefined && hit.policy === policy) return hit
    const keys = policy.keySuffixes.map((s) => counterKey(this.prefix, subject, s))
    const entry: SubjectKeys = {
      policy,
      keys,
      slot: this.#cluster ? keySlot(keys[0] ?? subject) : 0,
    }
    if (hit === undefined && cache.size >= KEY_CACHE_SIZE) {
      const oldest = cache.keys().next().value
      if (oldest !== undefined) cache.delete(oldest)
    }
    cache.set(subject, entry)
    return entry
  }

  #enqueue(entry: SubjectKeys, cost: number, deadline: number, sentAt: number): Promise<Decision> {
    return new Promise<Decision>((resolve, reject) => {
      let group = this.#groups.get(entry.slot)
      if (group === undefined) {
        group = { items: [], since: performance.now(), sentAt }
        this.#groups.set(entry.slot, group)
      }
      group.items.push({ entry, cost, deadline, resolve, reject })
      if (group.items.length >= this.maxBatch) {
        this.#groups.delete(entry.slot)
        this.#send(group)
      } else if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(this.#flush)
      }
    })
  }

  readonly #flush = (): void => {
    this.#scheduled = false
    const groups = [...this.#groups.values()]
    this.#groups.clear()
    for (const g of groups) this.#send(g)
  }

  /** One decide-batch.lua call for the decisions of `group`; settles every one of them. */
  #send(group: Group): void {
    const items = group.items
    const fail = (err: unknown): void => {
      const e = toStoreError(err)
      for (const it of items) it.reject(e)
    }
    const client = this.client
    if (client.status !== 'ready') {
      fail(new StoreConnectionError(`store connection is not ready (status: ${client.status})`))
      return
    }
    const left = this.timeoutMs - (performance.now() - group.since)
    if (left <= 0) {
      fail(new StoreTimeoutError(this.timeoutMs))
      return
    }
    const keys: string[] = []
    const args: (string | number)[] = [items.length]
    for (const it of items) {
      const { keys: k, policy } = it.entry
      for (let i = 0; i < k.length; i++) keys.push(k[i] as string)
      args.push(k.length, it.cost, it.deadline)
      const argv = policy.argv
      for (let i = 0; i < argv.length; i++) args.push(argv[i] as string | number)
    }
    let done = false
    const timer = setTimeout(() => {
      done = true
      fail(new StoreTimeoutError(this.timeoutMs))
    }, left)
    timer.unref()
    runScript(client, DECIDE_BATCH_SCRIPT, keys, args).then(
      (reply) => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (!Array.isArray(reply) || reply.length !== items.length) {
          fail(
            new StoreScriptError(
              `decide-batch script reply has the wrong shape: expected ${items.length} replies`,
            ),
          )
          return
        }
        this.#learnClock(items[0]!.entry.slot, reply[0], group.sentAt)
        for (let j = 0; j < items.length; j++) {
          const it = items[j] as Pending
          try {
            it.resolve(parseDecision(reply[j], it.entry.policy, this.timeoutMs))
          } catch (err) {
            it.reject(err)
          }
        }
      },
      (err: unknown) => {
        if (done) return
        done = true
        clearTimeout(timer)
        fail(err)
      },
    )
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

/**
 * `runScript` with KEYS and ARGV already in one array (`numKeys` keys first): no array built per call.
 * `budgetMs` > 0: the NOSCRIPT fallback EVAL is raced against what is left of that budget (counted
 * from the call), so a caller relying on the client's commandTimeout never waits past the budget.
 */
async function runScriptTail(
  client: RedisClient,
  script: LuaScript,
  numKeys: number,
  tail: readonly (string | number)[],
  budgetMs: number,
): Promise<unknown> {
  const started = budgetMs > 0 ? performance.now() : 0
  try {
    return await client.evalsha(script.sha1, numKeys, ...tail)
  } catch (err) {
    if (redisErrorCode(err) !== 'NOSCRIPT') throw toStoreError(err)
  }
  const fallback = client.eval(script.source, numKeys, ...tail).catch((err: unknown) => {
    throw toStoreError(err)
  })
  if (budgetMs <= 0) return fallback
  const left = budgetMs - (performance.now() - started)
  if (left <= 0) {
    fallback.catch(() => {})
    throw new StoreTimeoutError(budgetMs)
  }
  return withTimeout(fallback, left).catch((err: unknown) => {
    throw err instanceof StoreTimeoutError ? new StoreTimeoutError(budgetMs) : err
  })
}

/**
 * True when every call on `client` is already bounded within `timeoutMs` by the client itself: a
 * standalone ioredis client whose `commandTimeout` (and relaxed maintenance timeout) is at most the
 * budget. A Cluster (redirections, slot refreshes) or a client without it keeps the store's timer.
 */
function clientBounds(client: RedisClient, timeoutMs: number): boolean {
  if (!(client instanceof Redis)) return false
  const o = client.options as { commandTimeout?: unknown; maintRelaxedCommandTimeout?: unknown }
  const ct = o.commandTimeout
  const relaxed = o.maintRelaxedCommandTimeout
  return (
    typeof ct === 'number' &&
    ct > 0 &&
    ct <= timeoutMs &&
    (relaxed === undefined || (typeof relaxed === 'number' && relaxed <= timeoutMs))
  )
}

function checkBatch(batch: RedisStoreOptions['batch']): number {
  if (batch === undefined || batch === false) return 0
  if (batch === true) return DEFAULT_MAX_BATCH
  if (batch === null || typeof batch !== 'object') {
    throw new StoreOptionsError(`batch must be a boolean or { maxBatch }, got ${String(batch)}`)
  }
  const max = batch.maxBatch ?? DEFAULT_MAX_BATCH
  if (!Number.isSafeInteger(max) || max < 1 || max > 10_000) {
    throw new StoreOptionsError(`batch.maxBatch must be an integer 1..10000, got ${String(max)}`)
  }
  return max
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
