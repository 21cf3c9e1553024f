import type { Algorithm, CompiledPolicy, LimitSpec } from './types.js'

/** Short algorithm codes used in counter keys and in the decide script's ARGV. */
export const ALGORITHM_CODES: Readonly<Record<Algorithm, string>> = {
  'sliding-log': 'sl',
  'sliding-window': 'sw',
  'token-bucket': 'tb',
  'fixed-window': 'fw',
}

/**
 * Prepare `limits` for the hot path. Called when a config changes, never per request.
 *
 * - `keySuffixes[i]` = `<name>:<alg-code>:<windowMs>`: the algorithm and window are part of the
 *   key so that a config change to either starts a fresh counter instead of misreading old state.
 * - `argv` = for each limit: alg-code, limit, windowMs (the decide script's ARGV after `cost`).
 */
export function compilePolicy(limits: readonly LimitSpec[]): CompiledPolicy {
  const keySuffixes: string[] = []
  const argv: (string | number)[] = []
  let tightest = 0
  let tightestRate = Number.POSITIVE_INFINITY
  limits.forEach((l, i) => {
    const code = ALGORITHM_CODES[l.algorithm]
    keySuffixes.push(`${l.name}:${code}:${l.windowMs}`)
    argv.push(code, l.limit, l.windowMs)
    const rate = l.limit / l.windowMs
    if (rate < tightestRate) {
      tightestRate = rate
      tightest = i
    }
  })
  return Object.freeze({
    limits: Object.freeze([...limits]),
    keySuffixes: Object.freeze(keySuffixes),
    argv: Object.freeze(argv),
    tightest,
  })
}
