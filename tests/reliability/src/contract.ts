/**
 * An independent reading of the contract (sections 4 and 5), used as the oracle of the hostile
 * input suite: written from the contract text, not from the implementation.
 */

export const APP_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/
const ALGS = new Set(['sliding-log', 'sliding-window', 'token-bucket', 'fixed-window'])
const FAIL_MODES = new Set(['open', 'closed', 'local'])

const isInt = (v: unknown, min: number, max: number): boolean =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

/** Does `value` (parsed JSON) satisfy config schema version 1? */
export function isValidConfig(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const o = value as Record<string, unknown>
  for (const k of Object.keys(o)) if (!['limits', 'failMode', 'shadow'].includes(k)) return false
  if ('failMode' in o && !FAIL_MODES.has(o.failMode as string)) return false
  if ('shadow' in o && typeof o.shadow !== 'boolean') return false
  const limits = o.limits
  if (!Array.isArray(limits) || limits.length < 1 || limits.length > 10) return false
  const names = new Set<string>()
  for (const l of limits) {
    if (typeof l !== 'object' || l === null || Array.isArray(l)) return false
    const r = l as Record<string, unknown>
    for (const k of Object.keys(r)) if (!['name', 'algorithm', 'limit', 'windowMs'].includes(k)) return false
    if (typeof r.name !== 'string' || !NAME_RE.test(r.name) || names.has(r.name)) return false
    names.add(r.name)
    if (typeof r.algorithm !== 'string' || !ALGS.has(r.algorithm)) return false
    if (!isInt(r.limit, 1, r.algorithm === 'sliding-log' ? 10_000 : 1e9)) return false
    if (!isInt(r.windowMs, 1, 2_678_400_000)) return false
  }
  return true
}
