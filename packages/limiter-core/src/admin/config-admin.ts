import {
  CONFIG_UPDATES_CHANNEL,
  ConfigRepository,
  configKey,
  DEFAULT_APP_ID,
  type RedisLike,
} from '../config/repository.js'
import { etagOf, isValidAppId, parseConfig, serializeConfig, validateConfig } from '../config/schema.js'
import {
  ConfigValidationError,
  type ConfigValidationIssue,
  InvalidAppIdError,
  StoreOptionsError,
  toStoreError,
} from '../errors.js'
import type { RateLimitConfig } from '../types.js'
import { AUDIT_STREAM_KEY, AUDIT_STREAM_MAXLEN, HISTORY_LENGTH, historyKey } from './keys.js'
import { runConfigDelete, runConfigPut } from './scripts.js'

/**
 * A write's condition, from the HTTP headers. `ifMatch`: `'*'` (the config must exist) or a list of
 * strong ETags (quoted, e.g. `"3f2a…"`), one of which must be the stored value's; weak ETags
 * (`W/"…"`) never match. `ifNoneMatch: '*'`: the config must not exist (create only).
 * `ifMatch` wins when both are given.
 */
export interface Precondition {
  readonly ifMatch?: '*' | readonly string[]
  readonly ifNoneMatch?: '*'
}

/** Who makes a change and under which condition. */
export interface WriteOptions extends Precondition {
  /** The token's `sub` (recorded in history and audit). */
  readonly actor: string
}

/** A stored config as read back. `config` is null when the stored value is not a valid config. */
export interface AdminStoredConfig {
  readonly appId: string
  readonly raw: string
  readonly etag: string
  readonly config: RateLimitConfig | null
  /** Why the stored value is invalid (empty when `config` is set). */
  readonly issues: readonly ConfigValidationIssue[]
}

/** Outcome of a put or rollback. */
export type AdminPutResult =
  | {
      readonly ok: true
      readonly appId: string
      readonly config: RateLimitConfig
      readonly raw: string
      readonly etag: string
      /** ETag of the value replaced, null when there was none. */
      readonly oldEtag: string | null
      /** Version number of this config in the app's history (1, 2, …). */
      readonly version: number
      /** Redis time of the write, ms since epoch. */
      readonly at: number
      /** False when the audit entry could not be written (the change itself was made). */
      readonly audited: boolean
    }
  | { readonly ok: false; readonly reason: 'invalid'; readonly issues: readonly ConfigValidationIssue[] }
  | { readonly ok: false; readonly reason: 'precondition'; readonly currentEtag: string | null }
  | { readonly ok: false; readonly reason: 'version_not_found' }

/** Outcome of a delete. */
export type AdminDeleteResult =
  | {
      readonly ok: true
      readonly deleted: boolean
      readonly oldEtag: string | null
      readonly audited: boolean
    }
  | { readonly ok: false; readonly reason: 'precondition'; readonly currentEtag: string | null }
  | { readonly ok: false; readonly reason: 'default' }

/** Change kinds recorded in history and audit. */
export type AdminAction = 'put' | 'rollback' | 'delete'

/** One version in an app's history. */
export interface HistoryEntry {
  readonly version: number
  readonly etag: string
  /** The stored JSON text. */
  readonly raw: string
  /** Parsed config, null when it no longer passes the schema. */
  readonly config: RateLimitConfig | null
  /** Redis time of the write, ms since epoch. */
  readonly at: number
  /** The actor (token `sub`). */
  readonly by: string
  readonly action: 'put' | 'rollback'
  /** For a rollback, the version it restored. */
  readonly from: number | null
}

/** One audit stream entry. */
export interface AuditEntry {
  /** Stream entry ID (`<ms>-<seq>`), usable as a cursor. */
  readonly id: string
  /** Redis time of the entry, ms since epoch (from the ID). */
  readonly at: number
  readonly sub: string
  readonly appId: string
  readonly action: AdminAction
  readonly oldEtag: string | null
  readonly newEtag: string | null
  readonly version: number | null
}

/** A page of the audit log, newest first. */
export interface AuditPage {
  readonly entries: readonly AuditEntry[]
  /** Pass as `cursor` to read the next (older) page; null at the end. */
  readonly nextCursor: string | null
}

/** Options of `ConfigAdmin`. */
export interface ConfigAdminOptions {
  /** Versions kept per app (default 20). */
  readonly historyLength?: number
  /** Audit stream key (default `sluice:audit`). */
  readonly auditKey?: string
  /** Approximate audit stream cap (default 10000). */
  readonly auditMaxLen?: number
  /** Called when an audit entry could not be written after a change was made. Must not throw. */
  readonly onAuditError?: (err: Error, entry: AuditRecord) => void
}

/** What is appended to the audit stream. */
export interface AuditRecord {
  readonly sub: string
  readonly appId: string
  readonly action: AdminAction
  readonly oldEtag: string | null
  readonly newEtag: string | null
  readonly version: number | null
}

const STREAM_ID_RE = /^\d{1,20}-\d{1,20}$/
const STRONG_ETAG_RE = /^"[^",\s]*"$/

/** True for a stream entry ID usable as an audit cursor. */
export function isAuditCursor(v: string): boolean {
  return STREAM_ID_RE.test(v)
}

/** The precondition argument of the config scripts (see config-put.lua, ARGV[1]). */
export function encodePrecondition(p: Precondition, allowNoneMatch: boolean): string {
  if (p.ifMatch !== undefined) {
    if (p.ifMatch === '*') return '*'
    const strong = p.ifMatch.filter((e) => STRONG_ETAG_RE.test(e))
    // Only weak or malformed tags: nothing can match. '""' is never the ETag of a value.
    return strong.length === 0 ? '""' : strong.join(',')
  }
  if (p.ifNoneMatch === '*' && allowNoneMatch) return '!'
  return ''
}

function checkAppId(appId: string): void {
  if (!isValidAppId(appId)) throw new InvalidAppIdError(appId)
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : String(v)
}

/**
 * The Redis side of the admin API: compare-and-set writes (`config-put.lua`, `config-delete.lua`:
 * check the ETag, write, append to history, PUBLISH on `rateLimitConfig:updates`, in one script),
 * history, rollback and the audit stream. Works on standalone Redis and Redis Cluster. Never closes
 * the client it was given.
 */
export class ConfigAdmin {
  readonly client: RedisLike
  readonly repository: ConfigRepository
  readonly #historyLength: number
  readonly #auditKey: string
  readonly #auditMaxLen: number
  readonly #onAuditError: ((err: Error, entry: AuditRecord) => void) | undefined

  constructor(client: RedisLike, options: ConfigAdminOptions = {}) {
    this.client = client
    this.repository = new ConfigRepository(client)
    const h = options.historyLength ?? HISTORY_LENGTH
    if (!Number.isInteger(h) || h < 1 || h > 1000) {
      throw new StoreOptionsError(`historyLength must be an integer 1..1000 (got ${String(h)})`)
    }
    this.#historyLength = h
    this.#auditKey = options.auditKey ?? AUDIT_STREAM_KEY
    this.#auditMaxLen = options.auditMaxLen ?? AUDIT_STREAM_MAXLEN
    this.#onAuditError = options.onAuditError
  }

  /** The stored config of `appId`, or null. A stored value that fails the schema comes back with `issues`. */
  async get(appId: string): Promise<AdminStoredConfig | null> {
    checkAppId(appId)
    const raw = await redis(this.client.get(configKey(appId)))
    if (raw === null) return null
    return { appId, raw, etag: etagOf(raw), ...parseStored(raw, appId) }
  }

  /** Every appId with a config, sorted (`default` included). */
  list(): Promise<string[]> {
    return redis(this.repository.list())
  }

  /**
   * Validate `input` and store it when the precondition holds: one script compares the ETag, SETs,
   * appends to history and PUBLISHes. Then the change is appended to the audit stream.
   */
  async put(appId: string, input: unknown, options: WriteOptions): Promise<AdminPutResult> {
    checkAppId(appId)
    const issues = validateConfig(input)
    if (issues.length > 0) return { ok: false, reason: 'invalid', issues }
    const config = parseConfig(input, `appId=${appId}`)
    return this.#store(appId, config, options, 'put', 0)
  }

  /** Restore version `version` of the app's history, validated again, through the same compare-and-set. */
  async rollback(appId: string, version: number, options: WriteOptions): Promise<AdminPutResult> {
    checkAppId(appId)
    const entry = (await this.history(appId)).find((e) => e.version === version)
    if (entry === undefined) return { ok: false, reason: 'version_not_found' }
    let value: unknown
    try {
      value = JSON.parse(entry.raw)
    } catch (err) {
      return {
        ok: false,
        reason: 'invalid',
        issues: [{ path: '(root)', message: `is not valid JSON (${(err as Error).message})` }],
      }
    }
    const issues = validateConfig(value)
    if (issues.length > 0) return { ok: false, reason: 'invalid', issues }
    return this.#store(appId, parseConfig(value, `appId=${appId}`), options, 'rollback', version)
  }

  async #store(
    appId: string,
    config: RateLimitConfig,
    options: WriteOptions,
    action: 'put' | 'rollback',
    from: number,
  ): Promise<AdminPutResult> {
    const raw = serializeConfig(config)
    const reply = await runConfigPut(
      this.client,
      [configKey(appId), historyKey(appId)],
      [
        encodePrecondition(options, true),
        raw,
        CONFIG_UPDATES_CHANNEL,
        appId,
        this.#historyLength,
        options.actor,
        action,
        from,
      ],
    )
    if (!reply.stored) return { ok: false, reason: 'precondition', currentEtag: reply.currentEtag }
    const audited = await this.#audit({
      sub: options.actor,
      appId,
      action,
      oldEtag: reply.oldEtag,
      newEtag: reply.etag,
      version: reply.version,
    })
    return {
      ok: true,
      appId,
      config,
      raw,
      etag: reply.etag,
      oldEtag: reply.oldEtag,
      version: reply.version,
      at: reply.at,
      audited,
    }
  }

  /**
   * Delete the app's config when the precondition holds (one script: compare, DEL, PUBLISH). The
   * history is kept. `default` is never deleted. Deleting a missing config is a no-op (`deleted: false`).
   */
  async delete(appId: string, options: WriteOptions): Promise<AdminDeleteResult> {
    checkAppId(appId)
    if (appId === DEFAULT_APP_ID) return { ok: false, reason: 'default' }
    const reply = await runConfigDelete(
      this.client,
      [configKey(appId)],
      [encodePrecondition(options, false), CONFIG_UPDATES_CHANNEL, appId],
    )
    if (reply.status === 'precondition')
      return { ok: false, reason: 'precondition', currentEtag: reply.currentEtag }
    if (reply.status === 'absent') return { ok: true, deleted: false, oldEtag: null, audited: true }
    const audited = await this.#audit({
      sub: options.actor,
      appId,
      action: 'delete',
      oldEtag: reply.oldEtag,
      newEtag: null,
      version: null,
    })
    return { ok: true, deleted: true, oldEtag: reply.oldEtag, audited }
  }

  /** The app's last versions, newest first. Entries that cannot be read are skipped. */
  async history(appId: string): Promise<HistoryEntry[]> {
    checkAppId(appId)
    const items = await redis(this.client.lrange(historyKey(appId), 0, -1))
    const out: HistoryEntry[] = []
    for (const item of items) {
      const e = parseHistoryEntry(item, appId)
      if (e !== null) out.push(e)
    }
    return out
  }

  async #audit(record: AuditRecord): Promise<boolean> {
    try {
      await this.client.xadd(
        this.#auditKey,
        'MAXLEN',
        '~',
        this.#auditMaxLen,
        '*',
        'sub',
        record.sub,
        'appId',
        record.appId,
        'action',
        record.action,
        'oldEtag',
        record.oldEtag ?? '',
        'newEtag',
        record.newEtag ?? '',
        'version',
        record.version === null ? '' : String(record.version),
      )
      return true
    } catch (err) {
      try {
        this.#onAuditError?.(err instanceof Error ? err : new Error(String(err)), record)
      } catch {
        // hooks must not throw
      }
      return false
    }
  }

  /**
   * A page of the audit log, newest first, starting after `cursor` (an entry ID from `nextCursor`).
   * With `appIds`, only entries of those appIds are returned (pages may then be shorter than `limit`).
   */
  async audit(
    options: { cursor?: string; limit?: number; appIds?: ReadonlySet<string> | null } = {},
  ): Promise<AuditPage> {
    const limit = Math.max(1, Math.min(1000, Math.floor(options.limit ?? 50)))
    const filter = options.appIds ?? null
    let start = options.cursor === undefined ? '+' : `(${options.cursor}`
    if (options.cursor !== undefined && !isAuditCursor(options.cursor)) {
      throw new StoreOptionsError(`invalid audit cursor ${JSON.stringify(options.cursor)}`)
    }
    const entries: AuditEntry[] = []
    // Bound the work per page when a filter drops most entries.
    for (let round = 0; round < 10; round++) {
      const batch = (await redis(this.client.xrevrange(this.#auditKey, start, '-', 'COUNT', limit))) as [
        string,
        string[],
      ][]
      for (const [id, fields] of batch) {
        start = `(${id}`
        const e = parseAuditEntry(id, fields)
        if (e !== null && (filter === null || filter.has(e.appId))) entries.push(e)
        if (entries.length === limit) return { entries, nextCursor: id }
      }
      if (batch.length < limit) return { entries, nextCursor: null }
    }
    return { entries, nextCursor: start.slice(1) }
  }
}

/** Await a Redis command; its failure becomes a `SluiceStoreError`. */
async function redis<T>(p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    throw toStoreError(err)
  }
}

function parseStored(
  raw: string,
  appId: string,
): { config: RateLimitConfig | null; issues: ConfigValidationIssue[] } {
  try {
    return { config: parseConfig(JSON.parse(raw), `appId=${appId}`), issues: [] }
  } catch (err) {
    if (err instanceof ConfigValidationError) return { config: null, issues: [...err.errors] }
    return {
      config: null,
      issues: [{ path: '(root)', message: `is not valid JSON (${(err as Error).message})` }],
    }
  }
}

function parseHistoryEntry(item: string, appId: string): HistoryEntry | null {
  let v: Record<string, unknown>
  try {
    v = JSON.parse(item) as Record<string, unknown>
  } catch {
    return null
  }
  if (v === null || typeof v !== 'object') return null
  const raw = v.config
  const version = v.v
  if (typeof raw !== 'string' || typeof version !== 'number') return null
  const action = v.action === 'rollback' ? 'rollback' : 'put'
  const from = typeof v.from === 'number' && v.from > 0 ? v.from : null
  return {
    version,
    etag: typeof v.etag === 'string' ? v.etag : etagOf(raw),
    raw,
    config: parseStored(raw, appId).config,
    at: typeof v.at === 'number' ? v.at : 0,
    by: typeof v.by === 'string' ? v.by : '',
    action,
    from,
  }
}

function parseAuditEntry(id: string, fields: unknown): AuditEntry | null {
  if (!Array.isArray(fields)) return null
  const m = new Map<string, string>()
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(str(fields[i]), str(fields[i + 1]))
  const action = m.get('action')
  if (action !== 'put' && action !== 'rollback' && action !== 'delete') return null
  const version = m.get('version')
  return {
    id,
    at: Number(id.split('-')[0]),
    sub: m.get('sub') ?? '',
    appId: m.get('appId') ?? '',
    action,
    oldEtag: m.get('oldEtag') || null,
    newEtag: m.get('newEtag') || null,
    version: version === undefined || version === '' ? null : Number(version),
  }
}
