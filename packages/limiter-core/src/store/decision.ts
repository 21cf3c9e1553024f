import { StoreScriptError, StoreTimeoutError } from '../errors.js'
import type { CompiledPolicy, Decision, LimitResult } from '../types.js'

/**
 * Turn the decide script's flat reply (`now_ms`, then per limit: allowed, remaining, resetMs,
 * retryAfterMs) into a `Decision`. The memory store produces the same flat array, so both stores
 * share this one parser. Throws `StoreScriptError` when the reply does not have that shape.
 */
export function parseDecision(reply: unknown, policy: CompiledPolicy, timeoutMs = 0): Decision {
  const n = policy.limits.length
  // (A policy without limits has the same one-element reply, and nothing to expire.)
  if (n > 0 && isExpiredReply(reply)) {
    // The script ran after the caller's deadline and counted nothing (see decide.lua's ARGV[2]).
    throw new StoreTimeoutError(timeoutMs)
  }
  if (!Array.isArray(reply) || reply.length !== 1 + 4 * n) {
    throw new StoreScriptError(
      `decide script reply has the wrong shape: expected ${1 + 4 * n} integers, got ${describe(reply)}`,
    )
  }
  for (let i = 0; i < reply.length; i++) {
    const v = reply[i]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new StoreScriptError(`decide script reply[${i}] is not a non-negative integer: ${describe(v)}`)
    }
  }
  const nowMs = reply[0] as number
  const limits: LimitResult[] = []
  let allowed = true
  let blockedBy: string | null = null
  let retryAfterMs = 0
  for (let i = 0; i < n; i++) {
    const spec = policy.limits[i]!
    const base = 1 + 4 * i
    const ok = reply[base] as number
    if (ok !== 0 && ok !== 1) throw new StoreScriptError(`decide script reply[${base}] is not 0 or 1: ${ok}`)
    const retry = reply[base + 3] as number
    if (ok === 0) {
      if (retry < 1)
        throw new StoreScriptError(`decide script reply[${base + 3}]: a rejection needs retryAfterMs >= 1`)
      if (allowed) blockedBy = spec.name
      allowed = false
      if (retry > retryAfterMs) retryAfterMs = retry
    }
    limits.push({
      name: spec.name,
      limit: spec.limit,
      remaining: reply[base + 1] as number,
      resetMs: reply[base + 2] as number,
      retryAfterMs: ok === 1 ? 0 : retry,
      allowed: ok === 1,
    })
  }
  return { allowed, limits, blockedBy, retryAfterMs: allowed ? 0 : retryAfterMs, nowMs }
}

/** `{ now_ms }` alone: the decide scripts' answer to a call that ran past its deadline. */
export function isExpiredReply(reply: unknown): reply is [number] {
  return Array.isArray(reply) && reply.length === 1 && typeof reply[0] === 'number'
}

function describe(v: unknown): string {
  try {
    const s = JSON.stringify(v)
    return s === undefined ? String(v) : s.length > 200 ? `${s.slice(0, 200)}…` : s
  } catch {
    return String(v)
  }
}
