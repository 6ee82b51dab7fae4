-- Reserves every charge or none, atomically (one script runs at a time on a Redis server).
-- KEYS[i]: the counter of charge i.
-- ARGV[3i-2], ARGV[3i-1], ARGV[3i]: its limit, its amount, and how long the counter lives (ms).
-- A charge fits when used + amount <= limit; an amount of 0 fits while used < limit. Earlier
-- charges on the same counter count towards later ones.
-- Returns {1, used_1, ..., used_n}, every counter after the call, when all fit; otherwise
-- {0, i, used} for the first charge i that does not fit, having written nothing.
local pending = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local limit = tonumber(ARGV[3 * i - 2])
  local amount = tonumber(ARGV[3 * i - 1])
  local used = pending[key]
  if used == nil then
    used = tonumber(redis.call('GET', key) or '0')
  end
  if (amount == 0 and used >= limit) or (amount ~= 0 and used + amount > limit) then
    return {0, i, used}
  end
  pending[key] = used + amount
end
local levels = {1}
for i = 1, #KEYS do
  local key = KEYS[i]
  local amount = ARGV[3 * i - 1]
  if tonumber(amount) == 0 then
    levels[i + 1] = tonumber(redis.call('GET', key) or '0')
  else
    -- INCRBY takes the amount as sent: integer arithmetic, no rounding.
    levels[i + 1] = redis.call('INCRBY', key, amount)
    redis.call('PEXPIRE', key, ARGV[3 * i])
  end
end
return levels
