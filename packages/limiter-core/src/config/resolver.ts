import type { Cluster, Redis } from 'ioredis'
import { compilePolicy } from '../policy.js'
import { withTimeout } from '../store/redis-store.js'
import type { CompiledPolicy, RateLimitConfig } from '../types.js'
import {
  CONFIG_UPDATES_CHANNEL,
  ConfigRepository,
  configKey,
  DEFAULT_APP_ID,
  isCluster,
  type RedisLike,
} from './repository.js'
import {
  BUILT_IN_DEFAULT_CONFIG,
  etagOf,
  isValidAppId,
  parseConfig,
  parseConfigJson,
  serializeConfig,
} from './schema.js'
import type {
  CacheResult,
  ConfigResolver,
  ConfigSource,
  ReloadSource,
  ResolvedConfig,
  ResolverHooks,
} from './types.js'

/** Options of `createConfigResolver()`. */
export interface ConfigResolverOptions {
  /** Reads configs and seeds the default. Never closed by the resolver. */
  readonly client: RedisLike
  /**
   * A dedicated connection for SUBSCRIBE (it cannot run other commands). When absent one is created
   * with `client.duplicate()` and closed by `close()`; a given one is never closed.
   */
  readonly subscriber?: RedisLike
  /** How long a cached entry is served without re-reading Redis (`CONFIG_CACHE_TTL_MS`). Default 5000. */
  readonly cacheTtlMs?: number
  /** Bound of the per-appId cache (LRU). Default 10000. */
  readonly maxEntries?: number
  /** Budget of every Redis read; past it the last good config keeps serving. Default 100. */
  readonly timeoutMs?: number
  /** Seeded as `rateLimitConfig:default` when absent, and served while Redis has none. Default: `BUILT_IN_DEFAULT_CONFIG`. */
  readonly defaultConfig?: RateLimitConfig
  /** How often the default key is checked (`SET NX`) and restored. Default 10000. */
  readonly defaultGuardIntervalMs?: number
  /** After a failed read, how long the last good config is served before Redis is tried again. Default min(cacheTtlMs, 1000). */
  readonly retryAfterErrorMs?: number
  readonly hooks?: ResolverHooks
  /** Clock of the cache TTL (ms). Default `Date.now`. */
  readonly now?: () => number
}

interface Good {
  readonly config: RateLimitConfig
  readonly policy: CompiledPolicy
  readonly etag: string
}

interface Entry {
  readonly appId: string
  /** The last good config read from this entry's key; null when the key is absent (or never read OK). */
  own: Good | null
  /** Fresh until this instant (resolver clock); 0 = must be re-read. */
  expiresAt: number
  /** The last read failed: serving what we had until `expiresAt`. */
  failed: boolean
  /** Bumped by every invalidation; a read started before one does not make the entry fresh. */
  version: number
  loading: Promise<void> | null
  /** A read of this entry succeeded at least once. */
  loaded: boolean
  /** ETag of the last bad value reported by onInvalid. */
  invalidEtag: string | null
  resolved: ResolvedConfig | null
}

function newEntry(appId: string): Entry {
  return {
    appId,
    own: null,
    expiresAt: 0,
    failed: false,
    version: 0,
    loading: null,
    loaded: false,
    invalidEtag: null,
    resolved: null,
  }
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0)
    throw new TypeError(`ConfigResolver option ${name} must be > 0 (got ${value})`)
  return value
}

/** Internal: the current subscriber connection of an ioredis Cluster (private API, checked defensively). */
function clusterSubscriberInstance(cluster: Cluster): unknown {
  const sub = (cluster as unknown as { subscriber?: { getInstance?: () => unknown } }).subscriber
  return typeof sub?.getInstance === 'function' ? sub.getInstance() : undefined
}

class Resolver implements ConfigResolver {
  readonly #client: RedisLike
  readonly #repo: ConfigRepository
  readonly #givenSubscriber: RedisLike | undefined
  readonly #ttl: number
  readonly #max: number
  readonly #timeoutMs: number
  readonly #guardMs: number
  readonly #retryMs: number
  readonly #hooks: ResolverHooks
  readonly #now: () => number
  readonly #fallback: Good
  readonly #entries = new Map<string, Entry>()
  readonly #def: Entry = newEntry(DEFAULT_APP_ID)
  #epoch = 0
  #sub: RedisLike | null = null
  #ownsSub = false
  #starting: Promise<void> | null = null
  #closed = false
  #guard: NodeJS.Timeout | null = null
  #poll: NodeJS.Timeout | null = null
  #reseeding: Promise<void> | null = null
  #clusterSubInstance: unknown

  constructor(options: ConfigResolverOptions) {
    this.#client = options.client
    this.#repo = new ConfigRepository(options.client)
    this.#givenSubscriber = options.subscriber
    this.#ttl = positiveInt('cacheTtlMs', options.cacheTtlMs, 5000)
    this.#max = positiveInt('maxEntries', options.maxEntries, 10_000)
    this.#timeoutMs = positiveInt('timeoutMs', options.timeoutMs, 100)
    this.#guardMs = positiveInt('defaultGuardIntervalMs', options.defaultGuardIntervalMs, 10_000)
    this.#retryMs = positiveInt('retryAfterErrorMs', options.retryAfterErrorMs, Math.min(this.#ttl, 1000))
    this.#hooks = options.hooks ?? {}
    this.#now = options.now ?? Date.now
    // Validate once, at construction: a bad default config is a programming/deployment error.
    const config = parseConfig(options.defaultConfig ?? BUILT_IN_DEFAULT_CONFIG, 'defaultConfig')
    this.#fallback = Object.freeze({
      config,
      policy: compilePolicy(config.limits),
      etag: etagOf(serializeConfig(config)),
    })
  }

  // ---- hot path ----------------------------------------------------------------------------

  resolve(appId: string): ResolvedConfig | Promise<ResolvedConfig> {
    if (!isValidAppId(appId)) return this.#view(null, appId)
    const t = this.#now()
    const def = this.#def
    if (appId === DEFAULT_APP_ID) {
      if (t < def.expiresAt) {
        this.#count(def.failed ? 'stale' : 'hit', appId)
        return this.#view(def, appId)
      }
      return this.#loadDefaultThenView(t)
    }
    const entry = this.#entries.get(appId)
    if (entry !== undefined && t < entry.expiresAt && (entry.own !== null || t < def.expiresAt)) {
      // LRU: most recently used last.
      this.#entries.delete(appId)
      this.#entries.set(appId, entry)
      this.#count(entry.failed || (entry.own === null && def.failed) ? 'stale' : 'hit', appId)
      return this.#view(entry, appId)
    }
    return this.#loadThenView(appId, entry, t)
  }

  async #loadDefaultThenView(t: number): Promise<ResolvedConfig> {
    const def = this.#def
    if (def.loading === null && def.expiresAt !== 0 && !def.failed && def.expiresAt <= t) {
      this.#reload('ttl', DEFAULT_APP_ID)
    }
    await this.#refresh(def)
    this.#count(def.failed ? 'stale' : 'miss', DEFAULT_APP_ID)
    return this.#view(def, DEFAULT_APP_ID)
  }

  async #loadThenView(appId: string, existing: Entry | undefined, t: number): Promise<ResolvedConfig> {
    let entry = existing
    if (entry === undefined) {
      entry = newEntry(appId)
      this.#insert(entry)
    }
    if (t >= entry.expiresAt) {
      if (entry.loading === null && entry.expiresAt !== 0 && !entry.failed) this.#reload('ttl', appId)
      await this.#refresh(entry)
    }
    if (entry.own === null && this.#now() >= this.#def.expiresAt) await this.#refresh(this.#def)
    const failed = entry.failed || (entry.own === null && this.#def.failed)
    this.#count(failed ? 'stale' : 'miss', appId)
    return this.#view(entry, appId)
  }

  #view(entry: Entry | null, appId: string): ResolvedConfig {
    const own = entry !== null && entry !== this.#def ? entry.own : null
    const good = own ?? this.#def.own ?? this.#fallback
    const source: ConfigSource = own !== null ? 'app' : 'default'
    const r = entry?.resolved ?? null
    if (r !== null && r.policy === good.policy && r.etag === good.etag && r.source === source) return r
    const next: ResolvedConfig = Object.freeze({
      appId,
      config: good.config,
      source,
      policy: good.policy,
      etag: good.etag,
    })
    if (entry !== null) entry.resolved = next
    return next
  }

  #insert(entry: Entry): void {
    this.#entries.set(entry.appId, entry)
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next()
      if (oldest.done === true) break
      this.#entries.delete(oldest.value)
    }
  }

  // ---- reads -------------------------------------------------------------------------------

  /** One read of `entry`'s key, single-flight; when the default is stale too it is read in the same round trip. */
  #refresh(entry: Entry): Promise<void> {
    if (entry.loading !== null) return entry.loading
    const def = this.#def
    const withDefault = entry !== def && def.loading === null && this.#now() >= def.expiresAt
    const targets = withDefault ? [entry, def] : [entry]
    const versions = targets.map((e) => e.version)
    const epoch = this.#epoch
    const p = this.#read(targets.map((e) => configKey(e.appId))).then(
      (values) => {
        targets.forEach((e, i) => {
          this.#apply(e, values[i] ?? null, versions[i] === e.version && epoch === this.#epoch)
        })
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err))
        this.#error(error, `config read ${targets.map((e) => e.appId).join(',')}`)
        const retryAt = this.#now() + this.#retryMs
        for (const e of targets) {
          e.failed = true
          e.expiresAt = retryAt
        }
      },
    )
    const done = p.finally(() => {
      for (const e of targets) if (e.loading === done) e.loading = null
    })
    for (const e of targets) e.loading = done
    return done
  }

  /** GET one key, or both keys in one round trip (MGET standalone; two parallel GETs on a Cluster: no CROSSSLOT). */
  #read(keys: string[]): Promise<(string | null)[]> {
    const c = this.#client
    let p: Promise<(string | null)[]>
    if (keys.length === 1) p = c.get(keys[0] as string).then((v) => [v])
    else if (isCluster(c)) p = Promise.all(keys.map((k) => c.get(k)))
    else p = c.mget(...keys)
    return this.#bounded(p)
  }

  #bounded<T>(p: Promise<T>): Promise<T> {
    return withTimeout(p, this.#timeoutMs)
  }

  #apply(entry: Entry, raw: string | null, fresh: boolean): void {
    entry.failed = false
    entry.expiresAt = fresh ? this.#now() + this.#ttl : 0
    const isDefault = entry === this.#def
    const before = entry.loaded ? this.#view(entry, entry.appId).etag : null
    entry.loaded = true
    if (raw === null) {
      entry.own = null
      if (isDefault) this.#reseed()
    } else {
      const etag = etagOf(raw)
      if (entry.own?.etag === etag) return
      let config: RateLimitConfig
      try {
        config = parseConfigJson(raw, `appId=${entry.appId}`)
      } catch (err) {
        this.#count('invalid', entry.appId)
        if (entry.invalidEtag !== etag) {
          entry.invalidEtag = etag
          this.#safe(() => this.#hooks.onInvalid?.(entry.appId, (err as Error).message))
        }
        return
      }
      entry.own =
        isDefault && etag === this.#fallback.etag
          ? this.#fallback
          : Object.freeze({ config, policy: compilePolicy(config.limits), etag })
    }
    if (before !== null) {
      const now = this.#view(entry, entry.appId)
      if (now.etag !== before) this.#safe(() => this.#hooks.onUpdated?.(entry.appId, now.source, now.etag))
    }
  }

  /** Write the default config when `rateLimitConfig:default` is absent (SET NX), then publish `default`. */
  #reseed(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    if (this.#reseeding !== null) return this.#reseeding
    const p = this.#bounded(this.#repo.ensureDefault(this.#fallback.config)).then(
      (written) => {
        if (written) {
          // Serve what was just written (and what other pods will read) without another read.
          this.#def.own = this.#fallback
        }
      },
      (err: unknown) =>
        this.#error(err instanceof Error ? err : new Error(String(err)), 'default config seed'),
    )
    const done = p.finally(() => {
      if (this.#reseeding === done) this.#reseeding = null
    })
    this.#reseeding = done
    return done
  }

  // ---- invalidation --------------------------------------------------------------------------

  invalidate(appId?: string): void {
    if (appId === undefined) {
      this.#entries.clear()
      this.#stale(this.#def)
      return
    }
    if (appId === DEFAULT_APP_ID) this.#stale(this.#def)
    else this.#entries.delete(appId)
  }

  #stale(entry: Entry): void {
    entry.expiresAt = 0
    entry.version++
  }

  /** Every entry must be re-read (the subscriber reconnected: messages may have been lost). */
  #staleAll(): void {
    this.#epoch++
    this.#def.expiresAt = 0
    for (const e of this.#entries.values()) e.expiresAt = 0
  }

  #onMessage = (channel: string, message: string): void => {
    if (channel !== CONFIG_UPDATES_CHANNEL || this.#closed) return
    const entry = message === DEFAULT_APP_ID ? this.#def : this.#entries.get(message)
    if (entry === undefined) return
    this.#stale(entry)
    this.#reload('pubsub', message)
    // Reload in the background so the hot path stays synchronous. A read already in flight may
    // predate the write: read again after it.
    const inFlight = entry.loading
    if (inFlight === null) void this.#refresh(entry)
    else
      void inFlight.then(() => {
        if (entry.expiresAt === 0 && !this.#closed) void this.#refresh(entry)
      })
  }

  /** Subscribe (again) on the subscriber connection; once Redis confirms, treat every entry as stale. */
  #resubscribe = (): void => {
    const sub = this.#sub
    if (sub === null || this.#closed) return
    sub.subscribe(CONFIG_UPDATES_CHANNEL).then(
      () => this.#staleAll(),
      (err: unknown) => this.#error(err instanceof Error ? err : new Error(String(err)), 'config subscribe'),
    )
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('ConfigResolver is closed'))
    this.#starting ??= this.#start()
    return this.#starting
  }

  async #start(): Promise<void> {
    await this.#reseed()
    const sub = this.#givenSubscriber ?? this.#duplicate()
    this.#ownsSub = this.#givenSubscriber === undefined
    this.#sub = sub
    // A subscriber we created is ours to listen on: without an 'error' listener ioredis prints
    // "Unhandled error event" on stderr for every failed reconnect, outside the JSON log.
    if (this.#ownsSub) sub.on('error', this.#onSubscriberError)
    sub.on('message', this.#onMessage)
    if (isCluster(sub)) {
      // ioredis Cluster re-creates its subscriber connection silently: watch for a new one.
      this.#clusterSubInstance = clusterSubscriberInstance(sub)
      this.#poll = setInterval(() => {
        const now = clusterSubscriberInstance(sub)
        if (now !== this.#clusterSubInstance && now !== null && now !== undefined) {
          this.#clusterSubInstance = now
          this.#resubscribe()
        }
      }, 200)
      this.#poll.unref()
    }
    try {
      await withTimeout(sub.subscribe(CONFIG_UPDATES_CHANNEL), Math.max(2000, this.#timeoutMs))
      if (isCluster(sub)) this.#clusterSubInstance = clusterSubscriberInstance(sub)
    } catch (err) {
      this.#error(err instanceof Error ? err : new Error(String(err)), 'config subscribe')
    }
    // Listen for 'ready' only now: the first connection's 'ready' is not a reconnect. (Attached
    // earlier, it re-subscribed a second time and marked entries cached meanwhile as stale.)
    if (!isCluster(sub)) sub.on('ready', this.#resubscribe)
    this.#guard = setInterval(() => void this.#reseed(), this.#guardMs)
    this.#guard.unref()
  }

  #onSubscriberError = (err: Error): void => {
    this.#error(err, 'config subscriber')
  }

  #duplicate(): RedisLike {
    const c = this.#client
    if (isCluster(c)) return c.duplicate([], { enableOfflineQueue: true })
    return c.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: false }) as Redis
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#guard !== null) clearInterval(this.#guard)
    if (this.#poll !== null) clearInterval(this.#poll)
    this.#guard = null
    this.#poll = null
    const sub = this.#sub
    this.#sub = null
    if (sub !== null) {
      sub.off('message', this.#onMessage)
      sub.off('ready', this.#resubscribe)
      if (this.#ownsSub) sub.disconnect()
      else await this.#bounded(sub.unsubscribe(CONFIG_UPDATES_CHANNEL)).catch(() => undefined)
    }
  }

  // ---- reporting -----------------------------------------------------------------------------

  #count(result: CacheResult, appId: string): void {
    const f = this.#hooks.onCache
    if (f !== undefined) this.#safe(() => f(result, appId))
  }

  #reload(source: ReloadSource, appId: string): void {
    const f = this.#hooks.onReload
    if (f !== undefined) this.#safe(() => f(source, appId))
  }

  #error(err: Error, context: string): void {
    const f = this.#hooks.onError
    if (f !== undefined) this.#safe(() => f(err, context))
  }

  #safe(fn: () => void): void {
    try {
      fn()
    } catch {
      // Hooks must not throw; one that does must not break resolution.
    }
  }
}

/**
 * A `ConfigResolver` over Redis (standalone or Cluster): appId -> the app's config, else the default.
 *
 * - Fresh cache entries are returned synchronously (no Redis command); a miss is one read, shared by
 *   every concurrent caller for that appId; "no config of its own" is cached too.
 * - Entries live `cacheTtlMs`; a PUBLISH on `rateLimitConfig:updates` reloads one at once; a
 *   subscriber reconnect makes every entry stale.
 * - Reads are bounded by `timeoutMs`; on failure the last good config keeps serving (else the default).
 * - A stored value that is not JSON or fails the schema is never applied.
 * - `start()` seeds `rateLimitConfig:default` (SET NX) and restores it when it disappears.
 */
export function createConfigResolver(options: ConfigResolverOptions): ConfigResolver {
  return new Resolver(options)
}
