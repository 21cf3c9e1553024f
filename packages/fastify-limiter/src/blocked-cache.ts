/**
 * The blocked-key cache: once a subject is blocked until T (local clock, now + retryAfterMs), its
 * requests before T are answered 429 locally, without a store call. Exact: until T the store could
 * not admit them either (a rejection consumes nothing, counters only drain with time). Bounded (LRU);
 * an entry only applies to the same config (etag), policy and a cost at least as large.
 */
import type { CompiledPolicy, Decision } from '@sluice/limiter-core'

export interface BlockedEntry {
  readonly appId: string | null
  /** Where the deciding config came from: an update of `default` drops every entry decided by it. */
  readonly source: 'app' | 'default'
  readonly etag: string
  readonly policy: CompiledPolicy
  readonly cost: number
  /** Local-clock ms at which the block ends. */
  readonly until: number
  /** Local-clock ms at which the decision was made. */
  readonly at: number
  readonly decision: Decision
}

export class BlockedCache {
  private readonly map = new Map<string, BlockedEntry>()
  readonly maxSize: number

  constructor(maxSize: number) {
    this.maxSize = maxSize
  }

  get size(): number {
    return this.map.size
  }

  /** The live entry for `key` that applies to this request, or undefined (expired entries are dropped). */
  get(
    key: string,
    etag: string,
    policy: CompiledPolicy,
    cost: number,
    now: number,
  ): BlockedEntry | undefined {
    const entry = this.map.get(key)
    if (entry === undefined) return undefined
    if (entry.until <= now || entry.etag !== etag) {
      this.map.delete(key)
      return undefined
    }
    if (entry.policy !== policy || cost < entry.cost) return undefined
    return entry
  }

  set(key: string, entry: BlockedEntry): void {
    if (this.maxSize <= 0) return
    this.map.delete(key)
    this.map.set(key, entry)
    if (this.map.size > this.maxSize) {
      const oldest = this.map.keys().next()
      if (oldest.done !== true) this.map.delete(oldest.value)
    }
  }

  /**
   * Drop the entries decided by the config of `appId` (all when omitted): `default` drops every
   * entry decided by the default config (anonymous subjects and apps without their own config).
   */
  dropApp(appId?: string): void {
    if (appId === undefined) {
      this.map.clear()
      return
    }
    const isDefault = appId === 'default'
    for (const [key, entry] of this.map) {
      if (entry.appId === appId || (isDefault && entry.source === 'default')) this.map.delete(key)
    }
  }

  clear(): void {
    this.map.clear()
  }
}

/**
 * The decision as seen `elapsed` ms after it was made: per-limit reset and retry times shortened,
 * never below 1 ms for a limit that still blocks.
 */
export function agedDecision(entry: BlockedEntry, now: number): Decision {
  const elapsed = now - entry.at
  const d = entry.decision
  return {
    allowed: false,
    blockedBy: d.blockedBy,
    nowMs: d.nowMs + elapsed,
    retryAfterMs: Math.max(1, d.retryAfterMs - elapsed),
    limits: d.limits.map((l) => ({
      name: l.name,
      limit: l.limit,
      remaining: l.remaining,
      allowed: l.allowed,
      resetMs: Math.max(0, l.resetMs - elapsed),
      retryAfterMs: l.retryAfterMs === 0 ? 0 : Math.max(1, l.retryAfterMs - elapsed),
    })),
  }
}
