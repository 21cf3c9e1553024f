import { StoreOptionsError } from '../errors.js'

/** Default counter key prefix (contract section 3: `rl:{<subject>}:<limitName>…`). */
export const DEFAULT_PREFIX = 'rl'

/**
 * The counter key of one limit: `<prefix>:{<subject>}:<keySuffix>`, `keySuffix` being
 * `<name>:<alg-code>:<windowMs>` from `compilePolicy`. The braces are a Redis Cluster hash tag:
 * every key of a subject lives in one slot, so a multi-limit decision is one script call.
 */
export function counterKey(prefix: string, subject: string, suffix: string): string {
  return `${prefix}:{${subject}}:${suffix}`
}

/** Throws unless `prefix` can be used in counter keys (non-empty, no hash-tag braces). */
export function checkPrefix(prefix: string): string {
  if (prefix.length === 0 || /[{}]/.test(prefix)) {
    throw new StoreOptionsError(
      `prefix must be a non-empty string without '{' or '}', got ${JSON.stringify(prefix)}`,
    )
  }
  return prefix
}

/** Throws unless `subject` keeps the hash tag intact (non-empty, no '}'), and `cost` is an integer >= 1. */
export function checkDecideArgs(subject: string, cost: number): void {
  if (typeof subject !== 'string' || subject.length === 0 || subject.includes('}')) {
    throw new StoreOptionsError(
      `subject must be a non-empty string without '}', got ${JSON.stringify(subject)}`,
    )
  }
  if (!Number.isSafeInteger(cost) || cost < 1) {
    throw new StoreOptionsError(`cost must be an integer >= 1, got ${String(cost)}`)
  }
}
