--[[
decide-at.lua: TESTS ONLY. decide.lua with the clock passed in, so a differential test can compare
the Redis script and the memory store exactly (test/memory-redis-differential.test.ts). Production
code never runs it: RedisStore always runs decide.lua, whose clock is Redis TIME.

KEYS[i]       counter key of limit i (as decide.lua)
ARGV[1]       now in microseconds since the epoch (integer)
ARGV[2]       cost: integer >= 1
then per limit i (k = 3 + 3 * (i - 1)):
ARGV[k]       alg-code ('sl' | 'sw' | 'tb' | 'fw')
ARGV[k + 1]   limit
ARGV[k + 2]   windowMs

Reply: as decide.lua.
]]
--@include lib/decide.lua

return decide_all(tonumber(ARGV[1]), tonumber(ARGV[2]), 3)
