"""Lua scripts run by Redis, each atomically (Redis runs one script at a time).

Layout per counter (see ``gateway.quota.buckets``): window counters are a
sorted set ``<key>`` of members ``<entry id>:<amount>`` scored by timestamp
(ms) plus a running total ``<key>:sum``; lease counters are a sorted set of
lease ids scored by expiry (ms). Every key of one request shares the
customer's hash tag, so the scripts also run on Redis Cluster.

Numbers cross the Lua boundary as integers (milliseconds, token counts), which
Lua's doubles hold exactly.
"""

from __future__ import annotations

# Shared helpers, prepended to the scripts below.
_PRELUDE = r"""
local function amount_of(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

-- Drop entries with ts <= now - window and subtract them from the total.
local function purge(zkey, skey, now, window)
  local cut = now - window
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', cut)
  if #old > 0 then
    local freed = 0
    for _, m in ipairs(old) do freed = freed + amount_of(m) end
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', cut)
    local left = redis.call('DECRBY', skey, freed)
    if redis.call('ZCARD', zkey) == 0 then
      redis.call('DEL', skey)
    elseif left < 0 then
      -- The total was lost (evicted): rebuild it from the entries.
      local total = 0
      for _, m in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do total = total + amount_of(m) end
      redis.call('SET', skey, total, 'PX', window + 5000)
    end
  end
  return tonumber(redis.call('GET', skey) or '0')
end

-- Until the newest entry leaves the window.
local function reset_of(zkey, now, window)
  local newest = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return math.max(tonumber(newest[2]) + window - now, 0)
end

-- Until enough of the oldest entries have left for `cost` to fit.
local function retry_of(zkey, used, cost, limit, now, window)
  if cost > limit then return window end
  local need = used + cost - limit
  local freed, start, chunk = 0, 0, 256
  while true do
    local rows = redis.call('ZRANGE', zkey, start, start + chunk - 1, 'WITHSCORES')
    if #rows == 0 then return window end
    for i = 1, #rows, 2 do
      freed = freed + amount_of(rows[i])
      if freed >= need then return math.max(tonumber(rows[i + 1]) + window - now, 1) end
    end
    start = start + chunk
  end
end
"""

# KEYS: two per counter (zset, sum). ARGV: mode ('admit'|'peek'), now, entry id,
# lease expiry, then four per counter: type ('w'|'l'), limit, window_ms, cost.
# Returns {allowed, used_1, reset_1, retry_1, used_2, ...}.
ADMIT = (
    _PRELUDE
    + r"""
local mode, now, id, lease_exp = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local n = #KEYS / 2
local used, retry = {}, {}
local refused = false
for i = 1, n do
  local zkey, skey = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 4 + (i - 1) * 4
  local typ, limit = ARGV[b + 1], tonumber(ARGV[b + 2])
  local window, cost = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  retry[i] = -1
  if typ == 'l' then
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
    used[i] = redis.call('ZCARD', zkey)
    if mode == 'admit' and used[i] + 1 > limit then retry[i] = 1000; refused = true end
  else
    used[i] = purge(zkey, skey, now, window)
    if mode == 'admit' and used[i] + cost > limit then
      retry[i] = retry_of(zkey, used[i], cost, limit, now, window)
      refused = true
    end
  end
end
local allowed = (mode == 'admit') and not refused
local out = {allowed and 1 or 0}
for i = 1, n do
  local zkey, skey = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 4 + (i - 1) * 4
  local typ, window, cost = ARGV[b + 1], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local reset = 0
  if typ == 'l' then
    if allowed then
      redis.call('ZADD', zkey, lease_exp, id)
      redis.call('PEXPIRE', zkey, math.max(lease_exp - now, 1000) * 2)
      used[i] = used[i] + 1
    end
  else
    if allowed and cost > 0 then
      redis.call('ZADD', zkey, now, id .. ':' .. string.format('%d', cost))
      used[i] = redis.call('INCRBY', skey, cost)
      redis.call('PEXPIRE', zkey, window + 5000)
      redis.call('PEXPIRE', skey, window + 5000)
    end
    reset = reset_of(zkey, now, window)
  end
  out[#out + 1] = used[i]
  out[#out + 1] = reset
  out[#out + 1] = retry[i]
end
return out
"""
)

# KEYS: two per token window (zset, sum). ARGV: now, entry id, reserved,
# actual (-1 = unknown: release all), then one window_ms per window.
SETTLE = (
    _PRELUDE
    + r"""
local now, id = tonumber(ARGV[1]), ARGV[2]
local reserved, actual = tonumber(ARGV[3]), tonumber(ARGV[4])
local keep, extra = 0, 0
if actual >= 0 then
  keep = math.min(actual, reserved)
  extra = math.max(actual - reserved, 0)
end
for i = 1, #KEYS / 2 do
  local zkey, skey = KEYS[2 * i - 1], KEYS[2 * i]
  local window = tonumber(ARGV[4 + i])
  purge(zkey, skey, now, window)
  local member = id .. ':' .. string.format('%d', reserved)
  local score = redis.call('ZSCORE', zkey, member)
  if score and keep < reserved then
    redis.call('ZREM', zkey, member)
    if keep > 0 then
      redis.call('ZADD', zkey, score, id .. ':' .. string.format('%d', keep))
    end
    redis.call('DECRBY', skey, reserved - keep)
  end
  if extra > 0 then
    redis.call('ZADD', zkey, now, id .. '+x:' .. string.format('%d', extra))
    redis.call('INCRBY', skey, extra)
    redis.call('PEXPIRE', zkey, window + 5000)
    redis.call('PEXPIRE', skey, window + 5000)
  end
end
return 1
"""
)

# KEYS: lease sets. ARGV: lease id, new expiry (ms), key ttl (ms).
# Returns how many sets still hold the lease (a purged lease is not revived:
# its slot may already belong to another stream).
REFRESH = r"""
local alive = 0
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
    alive = alive + 1
  end
end
return alive
"""
