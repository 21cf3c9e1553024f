export { type LuaScript, SCRIPTS, type ScriptName } from '../generated/scripts.js'
export { type CounterState, decideAll, type StateAccess } from './algorithms.js'
export { parseDecision } from './decision.js'
export { counterKey, DEFAULT_PREFIX } from './keys.js'
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js'
export {
  type BatchOptions,
  type CreateRedisClientOptions,
  createRedisClient,
  DEFAULT_MAX_BATCH,
  DEFAULT_TIMEOUT_MS,
  type RedisClient,
  RedisStore,
  type RedisStoreOptions,
  reconnectBackoff,
  runScript,
  waitUntilReady,
  withTimeout,
} from './redis-store.js'
export { crc16, keySlot, SLOT_COUNT } from './slot.js'
