-- config-delete: delete one app's config when the precondition holds and publish the change, in one
-- atomic step (the admin API's DELETE). The app's history is kept, so a deleted config can be
-- rolled back.
--
-- KEYS[1] config key `rateLimitConfig:<appId>`
--
-- ARGV[1] precondition: '' none; '*' the config must exist; '!' it must not exist; else a comma-separated list of quoted
--         ETags, one of which must equal the stored value's ETag (If-Match)
-- ARGV[2] pub/sub channel (`rateLimitConfig:updates`)
-- ARGV[3] appId (the published message)
--
-- Reply: { 1, oldEtag } when deleted (and published);
--        { 2, '' } when there was nothing to delete and no precondition (nothing published);
--        { 0, currentEtag or '' } when the precondition failed (nothing written).

--@include lib/precondition.lua

local current, currentEtag, failed = read_and_check(KEYS[1], ARGV[1])
if failed then return failed end

if not current then return { 2, '' } end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return { 1, currentEtag }
