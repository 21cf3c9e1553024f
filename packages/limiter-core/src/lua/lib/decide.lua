--@include lib/util.lua
--@include lib/algorithms.lua

-- Check the arguments of one decision: cost, and per limit (alg-code, limit, windowMs) at ARGV[abase],
-- ARGV[abase + 1], ... for nlim limits. Returns nil when valid, else an error reply.
local function check_range(cost, nlim, abase)
  if cost == nil or cost < 1 or cost ~= math.floor(cost) then
    return redis.error_reply('ERR sluice decide: cost must be an integer >= 1')
  end
  for i = 1, nlim do
    local a = abase + (i - 1) * 3
    if ALGORITHMS[ARGV[a]] == nil then
      return redis.error_reply('ERR sluice decide: unknown algorithm code ' .. tostring(ARGV[a]))
    end
    local limit = tonumber(ARGV[a + 1])
    local window = tonumber(ARGV[a + 2])
    if limit == nil or limit < 1 or window == nil or window < 1 then
      return redis.error_reply('ERR sluice decide: limit and windowMs must be >= 1')
    end
  end
  return nil
end

-- Decide one request (arguments already checked by check_range) over the nlim limits whose keys are
-- KEYS[kbase .. kbase + nlim - 1] and whose (alg-code, limit, windowMs) start at ARGV[abase].
-- now_us: the clock in microseconds; cost: units. Phase 1 evaluates every limit without writing;
-- only if every limit admits, phase 2 counts `cost` in every limit (and sets every TTL). A rejection
-- writes nothing. Returns the flat reply: now_ms, then per limit allowed, remaining, resetMs, retryAfterMs.
local function decide_range(now_us, cost, kbase, nlim, abase)
  local now_ms = math.floor(now_us / 1000)
  local evals = {}
  local all = true
  for i = 1, nlim do
    local a = abase + (i - 1) * 3
    local alg = ALGORITHMS[ARGV[a]]
    local r = alg.eval(KEYS[kbase + i - 1], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), now_ms, now_us, cost)
    r.alg = alg
    evals[i] = r
    if not r.ok then all = false end
  end
  local out = { now_ms }
  for i = 1, nlim do
    local r = evals[i]
    if all then
      r.alg.commit(r)
      out[#out + 1] = 1
      out[#out + 1] = r.rem_yes
      out[#out + 1] = r.reset_yes
      out[#out + 1] = 0
    else
      out[#out + 1] = r.ok and 1 or 0
      out[#out + 1] = r.rem_no
      out[#out + 1] = r.reset_no
      out[#out + 1] = r.ok and 0 or r.retry
    end
  end
  return out
end

-- Decide every limit of the call together (KEYS[1..#KEYS]; limits from ARGV[base]).
local function decide_all(now_us, cost, base)
  local nlim = #KEYS
  if cost == nil or cost < 1 or cost ~= math.floor(cost) then
    return redis.error_reply('ERR sluice decide: cost must be an integer >= 1')
  end
  if #ARGV ~= base - 1 + 3 * nlim then
    return redis.error_reply('ERR sluice decide: expected 3 ARGV (alg-code, limit, windowMs) per key')
  end
  local err = check_range(cost, nlim, base)
  if err ~= nil then return err end
  return decide_range(now_us, cost, 1, nlim, base)
end
