--[[
decide-batch.lua: decide N requests in one call, one after the other, each exactly as decide.lua
would decide it alone (same limits arithmetic, all-or-nothing per request). Used by RedisStore's
`batch` option to send the decisions of one event-loop tick in one round trip. Inside one script the
N decisions are serialized, so the result is the same as N decide.lua calls in this order.

KEYS          the counter keys of every decision, decision after decision: decision j's nlim_j keys
              (<prefix>:{<subject>}:<name>:<alg-code>:<windowMs>). On Cluster every key of one call
              must be in one slot (the store groups decisions by the slot of their {subject}).
ARGV[1]       N: number of decisions, integer >= 1
then per decision j, starting at ARGV[2] (a = first index of decision j):
ARGV[a]       nlim_j: number of limits (and keys) of decision j, integer >= 1
ARGV[a + 1]   cost_j: integer >= 1
ARGV[a + 2]   deadline_j: Redis time in ms past which decision j's caller has given up, or 0 for none
              (as decide.lua's ARGV[2]: a decision that runs later counts nothing)
then per limit i of decision j (k = a + 3 + 3 * (i - 1)), exactly as compilePolicy's argv:
ARGV[k]       alg-code: 'sl' sliding-log | 'sw' sliding-window | 'tb' token-bucket | 'fw' fixed-window
ARGV[k + 1]   limit: integer >= 1
ARGV[k + 2]   windowMs: integer >= 1

Time: one redis.call('TIME') for the whole call (the decisions happen at the same instant).
Reply: an array of N replies, decision j's being decide.lua's reply ({ now_ms } alone when its
deadline had passed; else now_ms, then per limit: allowed, remaining, resetMs, retryAfterMs). Every decision's arguments are checked before any is
decided: a malformed call is an error reply and writes nothing.
]]
--@include lib/decide.lua

local n = tonumber(ARGV[1])
if n == nil or n < 1 or n ~= math.floor(n) then
  return redis.error_reply('ERR sluice decide-batch: N must be an integer >= 1')
end
-- pass 1: check the layout and every decision's arguments
local plan = {}
local a = 2
local k = 1
for j = 1, n do
  local nlim = tonumber(ARGV[a])
  local cost = tonumber(ARGV[a + 1])
  local deadline = tonumber(ARGV[a + 2])
  if nlim == nil or nlim < 1 or nlim ~= math.floor(nlim) or a + 2 + 3 * nlim > #ARGV or k + nlim - 1 > #KEYS then
    return redis.error_reply('ERR sluice decide-batch: decision ' .. j .. ' does not fit in KEYS/ARGV')
  end
  if deadline == nil or deadline < 0 then
    return redis.error_reply('ERR sluice decide-batch: deadline of decision ' .. j .. ' must be >= 0')
  end
  local err = check_range(cost, nlim, a + 3)
  if err ~= nil then return err end
  plan[j] = { cost, k, nlim, a + 3, deadline }
  a = a + 3 + 3 * nlim
  k = k + nlim
end
if a - 1 ~= #ARGV or k - 1 ~= #KEYS then
  return redis.error_reply('ERR sluice decide-batch: KEYS/ARGV longer than the N decisions')
end
-- pass 2: decide them in order
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local out = {}
for j = 1, n do
  local p = plan[j]
  if p[5] > 0 and now_ms > p[5] then
    out[j] = { now_ms }
  else
    out[j] = decide_range(now_us, p[1], p[2], p[3], p[4])
  end
end
return out
