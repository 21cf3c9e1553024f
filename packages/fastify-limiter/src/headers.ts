/**
 * Rate-limit response headers: `RateLimit-Policy` and `RateLimit` of the IETF httpapi
 * ratelimit-headers draft (structured fields, one list item per limit), and the legacy
 * `X-RateLimit-Limit` / `X-RateLimit-Remaining` / `X-RateLimit-Reset` of the tightest limit.
 *
 * Everything that depends only on the config (the policy header, the item prefixes) is computed once
 * per `CompiledPolicy` object and kept in a WeakMap; per request only the numbers are joined in.
 */
import type { CompiledPolicy, Decision } from '@sluice/limiter-core'

/** Header strings of one policy, computed once. */
export interface PolicyHeaders {
  /** `"per-second";q=10;w=1, "per-day";q=50000;w=86400` */
  readonly policy: string
  /** Per limit: `"per-second";r=` */
  readonly itemPrefixes: readonly string[]
  /** `X-RateLimit-Limit` value (the tightest limit's `limit`), as a string. */
  readonly tightestLimit: string
  /** Per limit: its `limit` as a string. */
  readonly limits: readonly string[]
  readonly tightest: number
}

const cache = new WeakMap<CompiledPolicy, PolicyHeaders>()

/** Seconds for a header: integer, rounded up. */
export function ceilSeconds(ms: number): number {
  return ms <= 0 ? 0 : Math.ceil(ms / 1000)
}

/** A structured-field string item (the names are `^[a-z0-9][a-z0-9_-]*$`, so no escaping is needed). */
function sfString(s: string): string {
  return `"${s.replace(/[\\"]/g, '\\$&')}"`
}

/** The header strings of `policy` (computed on first use, then cached for the policy's lifetime). */
export function policyHeaders(policy: CompiledPolicy): PolicyHeaders {
  let h = cache.get(policy)
  if (h === undefined) {
    const items: string[] = []
    const prefixes: string[] = []
    for (const l of policy.limits) {
      const name = sfString(l.name)
      // `w` is an integer number of seconds; a sub-second window is announced as 1.
      items.push(`${name};q=${l.limit};w=${Math.max(1, ceilSeconds(l.windowMs))}`)
      prefixes.push(`${name};r=`)
    }
    const tightest = policy.limits[policy.tightest]
    h = Object.freeze({
      policy: items.join(', '),
      itemPrefixes: Object.freeze(prefixes),
      tightestLimit: String(tightest?.limit ?? 0),
      limits: Object.freeze(policy.limits.map((l) => String(l.limit))),
      tightest: policy.tightest,
    })
    cache.set(policy, h)
  }
  return h
}

/** The `RateLimit` header value of a decision: `"per-second";r=3;t=1, …`. */
export function rateLimitHeader(h: PolicyHeaders, decision: Decision): string {
  let out = ''
  const limits = decision.limits
  for (let i = 0; i < limits.length; i++) {
    const l = limits[i]!
    if (i > 0) out += ', '
    out += `${h.itemPrefixes[i]}${l.remaining};t=${ceilSeconds(l.resetMs)}`
  }
  return out
}

/** Minimal reply surface the header writer needs (a FastifyReply fits). */
export interface HeaderTarget {
  header(name: string, value: string | number): unknown
}

/** Write every rate-limit header of a decision on `reply`. */
export function writeHeaders(
  reply: HeaderTarget,
  policy: CompiledPolicy,
  decision: Decision,
  legacy: boolean,
): void {
  const h = policyHeaders(policy)
  reply.header('ratelimit-policy', h.policy)
  reply.header('ratelimit', rateLimitHeader(h, decision))
  if (legacy) {
    const i = tightestIndex(decision, h.tightest)
    const t = decision.limits[i]
    if (t !== undefined) {
      reply.header('x-ratelimit-limit', h.limits[i] ?? h.tightestLimit)
      reply.header('x-ratelimit-remaining', t.remaining)
      reply.header('x-ratelimit-reset', ceilSeconds(t.resetMs))
    }
  }
}

/**
 * The limit the legacy headers describe: the one with the fewest units left now (it blocks first),
 * ties broken by the policy's statically tightest limit (smallest limit/windowMs), then by order.
 */
export function tightestIndex(decision: Decision, staticTightest: number): number {
  const limits = decision.limits
  let best = staticTightest < limits.length ? staticTightest : 0
  for (let i = 0; i < limits.length; i++) {
    if (limits[i]!.remaining < limits[best]!.remaining) best = i
  }
  return best
}

/** `Retry-After` seconds of a block: an integer >= 1. */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000))
}
