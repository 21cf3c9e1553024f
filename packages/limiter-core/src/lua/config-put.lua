-- config-put: compare-and-set one app's config, append it to the app's history and publish the
-- change, in one atomic step (the admin API's PUT and rollback).
--
-- KEYS[1] config key   `rateLimitConfig:<appId>` (string, the config JSON)
-- KEYS[2] history key  `sluice:history:{rateLimitConfig:<appId>}` (list, newest first); its hash tag
--                      is the config key's whole name, so on Redis Cluster it shares KEYS[1]'s slot
--
-- ARGV[1] precondition: '' none; '*' the config must exist (If-Match: *); '!' it must not exist
--         (If-None-Match: *); else a comma-separated list of quoted ETags, one of which must equal
--         the stored value's ETag (If-Match); a missing value matches no ETag
-- ARGV[2] the new config JSON, already validated and serialized by the caller
-- ARGV[3] pub/sub channel (`rateLimitConfig:updates`)
-- ARGV[4] appId (the published message)
-- ARGV[5] number of history entries to keep (>= 1)
-- ARGV[6] actor (the token's `sub`)
-- ARGV[7] action: 'put' or 'rollback'
-- ARGV[8] for a rollback, the version restored (0 otherwise)
--
-- ETag of a value = '"' .. sha1 hex of the stored JSON .. '"' (the same as `etagOf()` in TypeScript).
-- History entry (JSON): { v, etag, config (the JSON text), at (ms, Redis TIME), by, action, from }.
--
-- Reply: { 1, newEtag, oldEtag or '', version, atMs } when stored;
--        { 0, currentEtag or '' } when the precondition failed (nothing written).

--@include lib/precondition.lua

local current, currentEtag, failed = read_and_check(KEYS[1], ARGV[1])
if failed then return failed end

local raw = ARGV[2]
local newEtag = '"' .. redis.sha1hex(raw) .. '"'
redis.call('SET', KEYS[1], raw)

local version = 1
local head = redis.call('LINDEX', KEYS[2], 0)
if head then
  local ok, decoded = pcall(cjson.decode, head)
  if ok and type(decoded) == 'table' and tonumber(decoded.v) then
    version = tonumber(decoded.v) + 1
  end
end

local t = redis.call('TIME')
local atMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entry = cjson.encode({
  v = version,
  etag = newEtag,
  config = raw,
  at = atMs,
  by = ARGV[6],
  action = ARGV[7],
  from = tonumber(ARGV[8]),
})
redis.call('LPUSH', KEYS[2], entry)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)

redis.call('PUBLISH', ARGV[3], ARGV[4])
return { 1, newEtag, currentEtag, version, atMs }
