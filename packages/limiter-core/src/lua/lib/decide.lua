--@include lib/util.lua
--@include lib/algorithms.lua

-- Decide every limit together. now_us: the clock in microseconds; cost: units; base: ARGV index of
-- the first limit's alg-code. Phase 1 evaluates every limit without writing; only if every limit
-- admits, phase 2 counts `cost` in every limit (and sets every TTL). A rejection writes nothing.
local function decide_all(now_us, cost, base)
  if cost == nil or cost < 1 or cost ~= math.floor(cost) then
    return redis.error_reply('ERR sluice decide: cost must be an integer >= 1')
  end
  local nlim = #KEYS
  if #ARGV ~= base - 1 + 3 * nlim then
    return redis.error_reply('ERR sluice decide: expected 3 ARGV (alg-code, limit, windowMs) per key')
  end
  local now_ms = math.floor(now_us / 1000)
  local evals = {}
  local all = true
  for i = 1, nlim do
    local a = base + (i - 1) * 3
    local alg = ALGORITHMS[ARGV[a]]
    local limit = tonumber(ARGV[a + 1])
    local window = tonumber(ARGV[a + 2])
    if alg == nil then
      return redis.error_reply('ERR sluice decide: unknown algorithm code ' .. tostring(ARGV[a]))
    end
    if limit == nil or limit < 1 or window == nil or window < 1 then
      return redis.error_reply('ERR sluice decide: limit and windowMs must be >= 1')
    end
    local r = alg.eval(KEYS[i], limit, window, now_ms, now_us, cost)
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
