import { StoreOptionsError } from '../errors.js'
import type { CompiledPolicy, Decision, Store } from '../types.js'
import { type CounterState, decideAll, type StateAccess } from './algorithms.js'
import { parseDecision } from './decision.js'
import { checkDecideArgs, checkPrefix, counterKey, DEFAULT_PREFIX } from './keys.js'

/** Options of `MemoryStore`. */
export interface MemoryStoreOptions {
  /**
   * The clock, in milliseconds since the epoch (fractions allowed; microseconds are kept, as Redis
   * `TIME` has them). Default `Date.now`. Inject a fake clock for deterministic tests: the store
   * gives the Redis store's answers for the same clock.
   */
  readonly now?: () => number
  /** Key prefix, as RedisStore's (default `rl`). */
  readonly prefix?: string
  /**
   * Most counter keys held (default 100000). When a new key would pass it, the least recently
   * written key is evicted (its subject starts afresh: a bounded memory, a possibly generous answer).
   */
  readonly maxKeys?: number
  /** How often expired keys are swept, ms (default 10000; 0: no timer, expiry only on access). */
  readonly sweepIntervalMs?: number
}

interface Entry {
  state: CounterState
  /** Expired when now > expiresAt (Redis' rule). */
  expiresAt: number
}

/**
 * The in-process store: the embedded default and the `local` fail mode. The same algorithms as the
 * Redis scripts (src/store/algorithms.ts mirrors src/lua/), synchronous inside, bounded memory.
 * Counters are per process: with several replicas each one counts alone.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory' as const
  readonly #now: () => number
  readonly #prefix: string
  readonly #maxKeys: number
  readonly #map = new Map<string, Entry>()
  readonly #timer: NodeJS.Timeout | undefined
  #nowMs = 0
  #evictions = 0
  readonly #access: StateAccess

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX)
    const maxKeys = options.maxKeys ?? 100_000
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
      throw new StoreOptionsError(`maxKeys must be an integer >= 1, got ${String(maxKeys)}`)
    }
    this.#maxKeys = maxKeys
    const sweep = options.sweepIntervalMs ?? 10_000
    if (!Number.isFinite(sweep) || sweep < 0) {
      throw new StoreOptionsError(`sweepIntervalMs must be >= 0, got ${String(sweep)}`)
    }
    if (sweep > 0) {
      this.#timer = setInterval(() => this.sweep(), sweep)
      this.#timer.unref()
    }
    this.#access = {
      get: (key) => {
        const e = this.#map.get(key)
        if (e === undefined) return undefined
        if (this.#nowMs > e.expiresAt) {
          this.#map.delete(key)
          return undefined
        }
        return e.state
      },
      set: (key, state, ttlMs) => {
        const expiresAt = this.#nowMs + ttlMs
        const e = this.#map.get(key)
        if (e !== undefined) {
          // re-insert: Map order is then least recently written first
          this.#map.delete(key)
          e.state = state
          e.expiresAt = expiresAt
          this.#map.set(key, e)
          return
        }
        if (this.#map.size >= this.#maxKeys) this.#evict()
        this.#map.set(key, { state, expiresAt })
      },
    }
  }

  /** Counter keys currently held (expired ones included until swept). */
  get size(): number {
    return this.#map.size
  }

  /** Keys evicted because `maxKeys` was reached, since the store was created. */
  get evictions(): number {
    return this.#evictions
  }

  decide(subject: string, policy: CompiledPolicy, cost: number): Promise<Decision> {
    try {
      return Promise.resolve(this.decideSync(subject, policy, cost))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** `decide`, synchronously (the memory store never waits). */
  decideSync(subject: string, policy: CompiledPolicy, cost: number): Decision {
    checkDecideArgs(subject, cost)
    const nowUs = Math.round(this.#now() * 1000)
    this.#nowMs = Math.floor(nowUs / 1000)
    const keys = policy.keySuffixes.map((s) => counterKey(this.#prefix, subject, s))
    return parseDecision(decideAll(this.#access, keys, policy.argv, nowUs, cost), policy)
  }

  /**
   * Milliseconds until `key` expires, like Redis PTTL: -2 when absent or expired.
   * (Every counter key has a TTL, so -1 never occurs.)
   */
  pttl(key: string): number {
    const e = this.#map.get(key)
    if (e === undefined) return -2
    const now = Math.floor(this.#now())
    return now > e.expiresAt ? -2 : e.expiresAt - now
  }

  /** Drop every expired key now (also runs on the sweep timer). */
  sweep(): void {
    const now = Math.floor(this.#now())
    for (const [key, e] of this.#map) if (now > e.expiresAt) this.#map.delete(key)
  }

  #evict(): void {
    const oldest = this.#map.keys().next()
    if (!oldest.done) {
      this.#map.delete(oldest.value)
      this.#evictions++
    }
  }

  close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#map.clear()
    return Promise.resolve()
  }
}
