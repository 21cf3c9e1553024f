--[[
decide.lua: decide `cost` units against every limit of a policy, atomically, by the Redis clock.

KEYS[i]       counter key of limit i: <prefix>:{<subject>}:<name>:<alg-code>:<windowMs>
              (all keys of one call share the {subject} hash tag, so one Cluster slot)
ARGV[1]       cost: integer >= 1
then per limit i (k = 2 + 3 * (i - 1)), exactly as compilePolicy's argv:
ARGV[k]       alg-code: 'sl' sliding-log | 'sw' sliding-window | 'tb' token-bucket | 'fw' fixed-window
ARGV[k + 1]   limit: integer >= 1
ARGV[k + 2]   windowMs: integer >= 1

Time: redis.call('TIME').
Reply: flat array of integers: now_ms, then per limit i: allowed (0/1), remaining, resetMs,
retryAfterMs (0 when allowed; >= 1 when rejected; windowMs when cost > limit).
The request is admitted only if every allowed is 1; then it was counted in every limit and every key
written got a TTL. Otherwise nothing was written; allowed per limit says which limits admit.
]]
--@include lib/decide.lua

local t = redis.call('TIME')
return decide_all(tonumber(t[1]) * 1000000 + tonumber(t[2]), tonumber(ARGV[1]), 2)
