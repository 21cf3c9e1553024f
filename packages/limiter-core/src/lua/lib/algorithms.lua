-- The four algorithms, each as eval (reads only) + commit (writes, sets the TTL).
-- Mirrored line by line in src/store/algorithms.ts (the memory store): change both together.
--
-- eval(key, L, W, now_ms, now_us, cost) returns a table:
--   ok        this limit admits `cost` units
--   rem_yes / reset_yes   remaining units and ms until fully reset if the request is counted
--   rem_no / reset_no     the same if nothing is counted (the request is rejected by some limit)
--   retry     ms until this limit could admit (>= 1) when not ok; W when cost > L
--   (plus what commit needs)
-- lib/util.lua must be included before this file.

-- sliding-log: a sorted set, one member per admitted unit, score = admission time in ms.
-- An entry admitted at s is live while now < s + W. Exact.
local function sl_eval(key, L, W, n, u, c)
  local floor = n - W
  local count = redis.call('ZCOUNT', key, '(' .. fmt(floor), '+inf')
  local newest = nil
  if count > 0 then
    newest = tonumber(redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')[2])
  end
  local r = { key = key, count = count, floor = floor, W = W, u = u, c = c }
  r.rem_no = math.max(0, L - count)
  r.reset_no = 0
  if newest ~= nil then r.reset_no = newest + W - n end
  if c <= L and count + c <= L then
    r.ok = true
    r.rem_yes = L - count - c
    local last = n
    if newest ~= nil and newest > n then last = newest end
    r.reset_yes = last + W - n
    r.retry = 0
  else
    r.ok = false
    if c > L then
      r.retry = W
    else
      -- the need-th oldest live entry is the one whose expiry frees enough room
      local need = count + c - L
      local e = redis.call('ZRANGEBYSCORE', key, '(' .. fmt(floor), '+inf', 'WITHSCORES', 'LIMIT', need - 1, 1)
      r.retry = tonumber(e[2]) + W - n
    end
  end
  r.n = n
  return r
end

local function sl_commit(r)
  redis.call('ZREMRANGEBYSCORE', r.key, '-inf', fmt(r.floor))
  -- members are unique: <now_us>-<count+i>; a later call in the same microsecond sees a larger count
  local prefix = fmt(r.u) .. '-'
  local score = fmt(r.n)
  local i = 1
  while i <= r.c do
    local args = {}
    local j = 0
    while i <= r.c and j < 500 do
      args[#args + 1] = score
      args[#args + 1] = prefix .. (r.count + i)
      i = i + 1
      j = j + 1
    end
    redis.call('ZADD', r.key, unpack(args))
  end
  redis.call('PEXPIRE', r.key, fmt(r.reset_yes))
end

-- sliding-window: two fixed windows aligned to the epoch, the previous one weighted by the part of
-- it still inside the sliding window: estimate = prev * (W - elapsed) / W + cur (Cloudflare).
-- Compared in integers scaled by W: prev * (W - elapsed) + (cur + cost) * W <= L * W.
-- Hash fields: w = window index floor(now / W), c = count in window w, p = count in window w - 1.
local function sw_eval(key, L, W, n, u, c)
  local idx = math.floor(n / W)
  local h = redis.call('HMGET', key, 'w', 'c', 'p')
  local w = tonumber(h[1])
  local cur = tonumber(h[2]) or 0
  local prev = tonumber(h[3]) or 0
  if w == nil then
    cur = 0
    prev = 0
  elseif w > idx then
    idx = w -- the clock stepped back: stay in the stored window
  elseif w == idx - 1 then
    prev = cur
    cur = 0
  elseif w < idx - 1 then
    cur = 0
    prev = 0
  end
  local elapsed = n - idx * W
  if elapsed < 0 then elapsed = 0 end
  local left = W - elapsed
  local weighted = prev * left
  local cap = L * W
  local r = { key = key, idx = idx, prev = prev, W = W }
  r.rem_no = math.max(0, math.floor((cap - weighted - cur * W) / W))
  if cur > 0 then
    r.reset_no = W + left
  elseif prev > 0 then
    r.reset_no = left
  else
    r.reset_no = 0
  end
  if c <= L and weighted + (cur + c) * W <= cap then
    r.ok = true
    r.cur = cur + c
    r.rem_yes = math.max(0, math.floor((cap - weighted - r.cur * W) / W))
    r.reset_yes = W + left
    r.retry = 0
  else
    r.ok = false
    if c > L then
      r.retry = W
    elseif cur + c <= L then
      -- wait inside this window until prev's weight has shrunk enough (prev > 0 here)
      r.retry = left - math.floor(((L - cur - c) * W) / prev)
    else
      -- wait for the next window, where this window's count becomes prev (cur > 0 here)
      r.retry = left + W - math.floor(((L - c) * W) / cur)
    end
  end
  return r
end

local function sw_commit(r)
  redis.call('HSET', r.key, 'w', fmt(r.idx), 'c', fmt(r.cur), 'p', fmt(r.prev))
  -- the state matters until the end of the next window
  redis.call('PEXPIRE', r.key, fmt(r.reset_yes))
end

-- token-bucket: GCRA (generic cell rate algorithm, ITU-T I.371; as in Brandur Leach's "throttled"
-- and redis-cell). Emission interval T = W / L, capacity L (burst tolerance W), refills L per W.
-- State: the theoretical arrival time TAT as an integer number of microseconds plus a remainder in
-- units of 1/L us (string "tat:frac"), so T = W*1000/L us is carried exactly, with no rounding drift.
-- Admit when TAT' - now <= W (TAT' = max(TAT, now) + cost * T).
local function tb_ceil_ms(t, f, u)
  local d = t - u
  if f > 0 then d = d + 1 end
  if d <= 0 then return 0 end
  return math.ceil(d / 1000)
end

local function tb_eval(key, L, W, n, u, c)
  local wus = W * 1000
  local tat = u
  local frac = 0
  local s = redis.call('GET', key)
  if s then
    local sep = string.find(s, ':', 1, true)
    local st = tonumber(string.sub(s, 1, sep - 1))
    local sf = tonumber(string.sub(s, sep + 1))
    if st >= u then
      tat = st
      frac = sf
    end
  end
  local add = frac + c * wus
  local q = math.floor(add / L)
  local ntat = tat + q
  local nfrac = add - q * L
  local r = { key = key, tat = ntat, frac = nfrac }
  r.rem_no = math.min(L, math.max(0, math.floor(((u + wus - tat) * L - frac) / wus)))
  r.reset_no = tb_ceil_ms(tat, frac, u)
  local over = ntat - u - wus
  if c <= L and (over < 0 or (over == 0 and nfrac == 0)) then
    r.ok = true
    r.rem_yes = math.min(L, math.max(0, math.floor(((u + wus - ntat) * L - nfrac) / wus)))
    r.reset_yes = tb_ceil_ms(ntat, nfrac, u)
    r.retry = 0
  else
    r.ok = false
    if c > L then
      r.retry = W
    else
      if nfrac > 0 then over = over + 1 end
      r.retry = math.ceil(over / 1000)
    end
  end
  return r
end

local function tb_commit(r)
  -- +1 ms: the key outlives the moment the bucket is full again
  redis.call('SET', r.key, fmt(r.tat) .. ':' .. fmt(r.frac), 'PX', fmt(r.reset_yes + 1))
end

-- fixed-window: windows aligned to the epoch, index floor(now / W). Hash fields: w = window index,
-- c = count in window w. TTL = the end of the window.
local function fw_eval(key, L, W, n, u, c)
  local idx = math.floor(n / W)
  local h = redis.call('HMGET', key, 'w', 'c')
  local w = tonumber(h[1])
  local count = tonumber(h[2]) or 0
  if w == nil or w < idx then
    count = 0
  elseif w > idx then
    idx = w -- the clock stepped back: stay in the stored window
  end
  local reset = (idx + 1) * W - n
  local r = { key = key, idx = idx }
  r.rem_no = math.max(0, L - count)
  r.reset_no = 0
  if count > 0 then r.reset_no = reset end
  if c <= L and count + c <= L then
    r.ok = true
    r.count = count + c
    r.rem_yes = L - r.count
    r.reset_yes = reset
    r.retry = 0
  else
    r.ok = false
    if c > L then
      r.retry = W
    else
      r.retry = reset
    end
  end
  return r
end

local function fw_commit(r)
  redis.call('HSET', r.key, 'w', fmt(r.idx), 'c', fmt(r.count))
  redis.call('PEXPIRE', r.key, fmt(r.reset_yes))
end

local ALGORITHMS = {
  sl = { eval = sl_eval, commit = sl_commit },
  sw = { eval = sw_eval, commit = sw_commit },
  tb = { eval = tb_eval, commit = tb_commit },
  fw = { eval = fw_eval, commit = fw_commit },
}
