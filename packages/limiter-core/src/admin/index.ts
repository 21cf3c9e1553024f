export {
  type AdminAction,
  type AdminDeleteResult,
  type AdminPutResult,
  type AdminStoredConfig,
  type AuditEntry,
  type AuditPage,
  type AuditRecord,
  ConfigAdmin,
  type ConfigAdminOptions,
  encodePrecondition,
  type HistoryEntry,
  isAuditCursor,
  type Precondition,
  type WriteOptions,
} from './config-admin.js'
export { AUDIT_STREAM_KEY, AUDIT_STREAM_MAXLEN, HISTORY_LENGTH, historyKey } from './keys.js'
