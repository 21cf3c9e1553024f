import type { RedisLike } from '../config/repository.js'
import { StoreScriptError } from '../errors.js'
import { CONFIG_DELETE_SCRIPT, CONFIG_PUT_SCRIPT, type LuaScript } from '../generated/scripts.js'
import { runScript } from '../store/redis-store.js'

export { CONFIG_DELETE_SCRIPT, CONFIG_PUT_SCRIPT }

type Script = LuaScript

/** EVALSHA with EVAL fallback on NOSCRIPT; errors classified as `SluiceStoreError`. */
function evalScript(
  client: RedisLike,
  s: Script,
  keys: readonly string[],
  args: readonly (string | number)[],
) {
  return runScript(client, s, keys, args)
}

function asString(v: unknown): string | null {
  if (typeof v === 'string') return v
  if (Buffer.isBuffer(v)) return v.toString('utf8')
  return null
}

/** Reply of `config-put.lua`. */
export type ConfigPutReply =
  | {
      readonly stored: true
      readonly etag: string
      readonly oldEtag: string | null
      readonly version: number
      readonly at: number
    }
  | { readonly stored: false; readonly currentEtag: string | null }

/**
 * Run `config-put.lua`. KEYS: config key, history key. ARGV: precondition, raw JSON, channel, appId,
 * history length, actor, action, rollback-from version (see the script's header).
 */
export async function runConfigPut(
  client: RedisLike,
  keys: readonly [configKey: string, historyKey: string],
  args: readonly [string, string, string, string, number, string, 'put' | 'rollback', number],
): Promise<ConfigPutReply> {
  const r = await evalScript(client, CONFIG_PUT_SCRIPT, keys, args)
  if (!Array.isArray(r)) throw new StoreScriptError(`config-put: unexpected reply ${JSON.stringify(r)}`)
  if (r[0] === 0 && r.length === 2) {
    const cur = asString(r[1])
    if (cur !== null) return { stored: false, currentEtag: cur === '' ? null : cur }
  }
  if (r[0] === 1 && r.length === 5) {
    const etag = asString(r[1])
    const old = asString(r[2])
    const version = r[3]
    const at = r[4]
    if (etag !== null && old !== null && typeof version === 'number' && typeof at === 'number') {
      return { stored: true, etag, oldEtag: old === '' ? null : old, version, at }
    }
  }
  throw new StoreScriptError(`config-put: unexpected reply ${JSON.stringify(r)}`)
}

/** Reply of `config-delete.lua`. */
export type ConfigDeleteReply =
  | { readonly status: 'deleted'; readonly oldEtag: string }
  | { readonly status: 'absent' }
  | { readonly status: 'precondition'; readonly currentEtag: string | null }

/** Run `config-delete.lua`. KEYS: config key. ARGV: precondition, channel, appId. */
export async function runConfigDelete(
  client: RedisLike,
  keys: readonly [configKey: string],
  args: readonly [string, string, string],
): Promise<ConfigDeleteReply> {
  const r = await evalScript(client, CONFIG_DELETE_SCRIPT, keys, args)
  if (Array.isArray(r) && r.length === 2) {
    const s = asString(r[1])
    if (s !== null) {
      if (r[0] === 1 && s !== '') return { status: 'deleted', oldEtag: s }
      if (r[0] === 2) return { status: 'absent' }
      if (r[0] === 0) return { status: 'precondition', currentEtag: s === '' ? null : s }
    }
  }
  throw new StoreScriptError(`config-delete: unexpected reply ${JSON.stringify(r)}`)
}
