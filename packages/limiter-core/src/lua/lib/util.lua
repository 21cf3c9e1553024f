-- Shared helpers. Numbers passed to redis.call or stored are formatted with %.0f: Lua's default
-- number-to-string conversion (%.14g) would turn 1700000000000000 into 1.7e+15.
local function fmt(x)
  return string.format('%.0f', x)
end
