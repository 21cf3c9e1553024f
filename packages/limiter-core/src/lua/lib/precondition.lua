-- Shared by config-put.lua and config-delete.lua: the stored value of KEYS[1], its ETag, and the
-- If-Match / If-None-Match check.
--
-- ETag of a value = '"' .. sha1 hex of the stored JSON .. '"' (the same as `etagOf()` in TypeScript).
-- cond: '' none; '*' the value must exist (If-Match: *); '!' it must not exist (If-None-Match: *);
-- else a comma-separated list of quoted ETags, one of which must equal the stored value's ETag.
-- Returns current (or false), currentEtag ('' when absent), and nil when the precondition holds, else
-- the reply { 0, currentEtag or '' } to return (nothing written).
local function read_and_check(key, cond)
  local current = redis.call('GET', key)
  local currentEtag = ''
  if current then
    currentEtag = '"' .. redis.sha1hex(current) .. '"'
  end
  if cond == '*' then
    if not current then return current, currentEtag, { 0, '' } end
  elseif cond == '!' then
    if current then return current, currentEtag, { 0, currentEtag } end
  elseif cond ~= '' then
    if not current then return current, currentEtag, { 0, '' } end
    if not string.find(',' .. cond .. ',', ',' .. currentEtag .. ',', 1, true) then
      return current, currentEtag, { 0, currentEtag }
    end
  end
  return current, currentEtag, nil
end
