--[[
decide.lua: decide `cost` units against every limit of a policy, atomically, by the Redis clock.

KEYS[i]       counter key of limit i: <prefix>:{<subject>}:<name>:<alg-code>:<windowMs>
              (all keys of one call share the {subject} hash tag, so one Cluster slot)
ARGV[1]       cost: integer >= 1
ARGV[2]       deadline: Redis time in ms past which the caller has given up on this decision (its
              timeout budget, mapped onto the Redis clock), or 0 for none. A call that runs later (it
              sat in a TCP buffer through a partition, or Redis was paused) counts nothing.
then per limit i (k = 3 + 3 * (i - 1)), exactly as compilePolicy's argv:
ARGV[k]       alg-code: 'sl' sliding-log | 'sw' sliding-window | 'tb' token-bucket | 'fw' fixed-window
ARGV[k + 1]   limit: integer >= 1
ARGV[k + 2]   windowMs: integer >= 1

Time: redis.call('TIME').
Reply: { now_ms } alone when the deadline had passed (nothing written); else a flat array of
integers: now_ms, then per limit i: allowed (0/1), remaining, resetMs,
retryAfterMs (0 when allowed; >= 1 when rejected; windowMs when cost > limit).
The request is admitted only if every allowed is 1; then it was counted in every limit and every key
written got a TTL. Otherwise nothing was written; allowed per limit says which limits admit.
]]
--@include lib/decide.lua

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local deadline = tonumber(ARGV[2])
if deadline == nil or deadline < 0 then
  return redis.error_reply('ERR sluice decide: deadline must be an integer >= 0')
end
if deadline > 0 and math.floor(now_us / 1000) > deadline then
  return { math.floor(now_us / 1000) }
end
return decide_all(now_us, tonumber(ARGV[1]), 3)
