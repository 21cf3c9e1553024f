import { configKey } from '../config/repository.js'

/**
 * Redis keys the admin API adds to the layout of contract section 3 (documented in
 * packages/admin-plugin/README.md):
 *
 * - `sluice:history:{rateLimitConfig:<appId>}`: list, newest first, the last `historyLength` (20)
 *   versions of an app's config. Its hash tag is the config key's whole name, so on Redis Cluster it
 *   lands in the config key's slot and `config-put.lua` updates both atomically. No TTL. Kept when the
 *   config is deleted, so a deleted config can be rolled back.
 * - `sluice:audit`: stream, capped with `MAXLEN ~ 10000`, one entry per change. On Cluster it lives
 *   in its own slot: it is written right after the compare-and-set, not in the same atomic step.
 */

/** `sluice:history:{rateLimitConfig:<appId>}`: same Cluster slot as `rateLimitConfig:<appId>`. */
export function historyKey(appId: string): string {
  return `sluice:history:{${configKey(appId)}}`
}

/** The audit stream. */
export const AUDIT_STREAM_KEY = 'sluice:audit'

/** Approximate cap of the audit stream (`XADD … MAXLEN ~ 10000`). */
export const AUDIT_STREAM_MAXLEN = 10_000

/** Versions of each app's config kept in its history list. */
export const HISTORY_LENGTH = 20
