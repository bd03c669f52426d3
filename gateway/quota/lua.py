"""Lua scripts run by Redis, each atomically (Redis runs one script at a time).

Layout per window counter (see ``gateway.quota.buckets``): a sorted set
``<key>`` of slot ids scored by the timestamp (ms) of the newest entry in the
slot, and a hash ``<key>:a`` holding each slot's amount plus the running
``total``. A lease counter is a sorted set ``<key>`` of lease ids scored by
expiry (ms). Every key of one request shares the customer's hash tag, so the
scripts also run on Redis Cluster. ``ZADD GT`` needs Redis 6.2 or later.

Numbers cross the Lua boundary as integers (milliseconds, token counts), which
Lua's doubles hold exactly; they go back to Redis through ``%d`` so that no
large number is ever written in exponent notation.

Same algorithm as ``gateway.quota.memory`` (the tests run both).
"""

from __future__ import annotations

# Shared helpers, prepended to the scripts below.
_PRELUDE = r"""
local function int(x) return string.format('%d', x) end

local function slot_of(ts, slot) return int(math.floor(ts / slot)) end

-- Drop the slots whose newest entry has ts <= now - window; return the total.
local function purge(zkey, hkey, now, window)
  local cut = now - window
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', cut)
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', cut)
    if redis.call('ZCARD', zkey) == 0 then
      redis.call('DEL', hkey)
      return 0
    end
    local freed = 0
    for _, a in ipairs(redis.call('HMGET', hkey, unpack(old))) do
      freed = freed + (tonumber(a) or 0)
    end
    redis.call('HDEL', hkey, unpack(old))
    local left = redis.call('HINCRBY', hkey, 'total', int(-freed))
    if left < 0 then
      -- The total was lost (evicted): rebuild it from the slots.
      local total = 0
      local live = redis.call('ZRANGE', zkey, 0, -1)
      for _, a in ipairs(redis.call('HMGET', hkey, unpack(live))) do
        total = total + (tonumber(a) or 0)
      end
      redis.call('HSET', hkey, 'total', int(total))
      return total
    end
    return left
  end
  return tonumber(redis.call('HGET', hkey, 'total') or '0')
end

-- Add `amount` at `ts`; return the new total.
local function add(zkey, hkey, ts, amount, window, slot)
  local id = slot_of(ts, slot)
  redis.call('ZADD', zkey, 'GT', ts, id)
  redis.call('HINCRBY', hkey, id, int(amount))
  local total = redis.call('HINCRBY', hkey, 'total', int(amount))
  redis.call('PEXPIRE', zkey, window + 5000)
  redis.call('PEXPIRE', hkey, window + 5000)
  return total
end

-- Take `amount` out of the slot `ts` went into, if that slot is still held.
local function release(zkey, hkey, ts, amount, slot)
  local id = slot_of(ts, slot)
  local have = tonumber(redis.call('HGET', hkey, id) or '0')
  if have <= 0 then return end
  amount = math.min(amount, have)
  redis.call('HINCRBY', hkey, 'total', int(-amount))
  if have - amount <= 0 then
    -- An empty slot must not keep "reset" alive.
    redis.call('HDEL', hkey, id)
    redis.call('ZREM', zkey, id)
  else
    redis.call('HINCRBY', hkey, id, int(-amount))
  end
end

-- Until the newest slot leaves the window.
local function reset_of(zkey, now, window)
  local newest = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return math.max(tonumber(newest[2]) + window - now, 0)
end

-- Until enough of the oldest slots have left for `cost` to fit.
local function retry_of(zkey, hkey, used, cost, limit, now, window)
  if cost > limit then return window end
  local need = used + cost - limit
  local freed, start, chunk = 0, 0, 128
  while true do
    local rows = redis.call('ZRANGE', zkey, start, start + chunk - 1, 'WITHSCORES')
    if #rows == 0 then return window end
    local ids = {}
    for i = 1, #rows, 2 do ids[#ids + 1] = rows[i] end
    local amounts = redis.call('HMGET', hkey, unpack(ids))
    for j = 1, #ids do
      freed = freed + (tonumber(amounts[j]) or 0)
      if freed >= need then return math.max(tonumber(rows[2 * j]) + window - now, 1) end
    end
    start = start + chunk
  end
end
"""

# KEYS: two per counter (slot set or lease set, amounts hash). ARGV: mode
# ('admit'|'peek'), now, lease id, lease expiry, tokens, then four per counter:
# type ('r' requests, 't' tokens, 'l' lease), limit, window_ms, slot_ms; last,
# the requests it counts (1, or a Message Batch's inner requests).
# Returns {allowed, used_1, reset_1, retry_1, used_2, ...}.
ADMIT = (
    _PRELUDE
    + r"""
local mode, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local lease_exp, tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = #KEYS / 2
local requests = tonumber(ARGV[6 + 4 * n]) or 1
local used, retry, cost = {}, {}, {}
local refused = false
for i = 1, n do
  local zkey, hkey = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 5 + (i - 1) * 4
  local typ, limit, window = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  retry[i] = -1
  cost[i] = (typ == 't') and tokens or requests
  if typ == 'l' then
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
    used[i] = redis.call('ZCARD', zkey)
    if mode == 'admit' and used[i] + 1 > limit then retry[i] = 1000; refused = true end
  else
    used[i] = purge(zkey, hkey, now, window)
    if mode == 'admit' and used[i] + cost[i] > limit then
      retry[i] = retry_of(zkey, hkey, used[i], cost[i], limit, now, window)
      refused = true
    end
  end
end
local allowed = (mode == 'admit') and not refused
local out = {allowed and 1 or 0}
for i = 1, n do
  local zkey, hkey = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 5 + (i - 1) * 4
  local typ, window, slot = ARGV[b + 1], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local reset = 0
  if typ == 'l' then
    if allowed then
      redis.call('ZADD', zkey, lease_exp, id)
      redis.call('PEXPIRE', zkey, math.max(lease_exp - now, 1000) * 2)
      used[i] = used[i] + 1
    end
  else
    if allowed and cost[i] > 0 then
      used[i] = add(zkey, hkey, now, cost[i], window, slot)
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

# KEYS: two per token window (slot set, amounts hash), then the lease sets.
# ARGV: now, admitted at, reserved, actual (-1 = unknown: release all), lease id
# ('' = none), number of token windows, then window_ms and slot_ms per window.
SETTLE = (
    _PRELUDE
    + r"""
local now, admitted = tonumber(ARGV[1]), tonumber(ARGV[2])
local reserved, actual, id = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local nw = tonumber(ARGV[6])
local keep, extra = 0, 0
if actual >= 0 then
  keep = math.min(actual, reserved)
  extra = math.max(actual - reserved, 0)
end
for i = 1, nw do
  local zkey, hkey = KEYS[2 * i - 1], KEYS[2 * i]
  local window, slot = tonumber(ARGV[5 + 2 * i]), tonumber(ARGV[6 + 2 * i])
  purge(zkey, hkey, now, window)
  if keep < reserved then release(zkey, hkey, admitted, reserved - keep, slot) end
  if extra > 0 then add(zkey, hkey, now, extra, window, slot) end
end
if id ~= '' then
  for i = 2 * nw + 1, #KEYS do redis.call('ZREM', KEYS[i], id) end
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

# KEYS: the marker. ARGV: a fresh random value. The marker holds the store's
# *generation*: planted (SET) only when absent, so a store that lost its
# counters (and the marker with them) gets a new value, and every process
# that remembers another value knows its contributions are gone, not only the
# first one to look. The value ends with the server's time at planting.
# Returns {1 if planted now, the value, its age in ms by the server's clock}.
EPOCH = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
local planted = 0
if not v then
  v = ARGV[1] .. ':' .. string.format('%d', now)
  redis.call('SET', KEYS[1], v)
  planted = 1
end
local at = tonumber(string.match(v, ':(%d+)$') or '0')
return {planted, v, string.format('%d', now - at)}
"""

# KEYS: the marker, this process's "restored" key, then two per counter (slot
# set, amounts hash). ARGV: generation, now, restored-key ttl (ms), number of
# counters, one window (ms) per counter, then four per slot: counter index
# (0-based), slot id, newest ts, amount.
# Adds each slot still inside its window back with its own timestamp (so it
# leaves when it would have). Runs once per process and generation: -1 if the
# store is already at another generation (the watch will see it), -2 if this
# process restored into this generation already (a retry after a timeout
# that had run). Else the number of slots put back.
RESTORE = (
    _PRELUDE
    + r"""
local gen = ARGV[1]
if redis.call('GET', KEYS[1]) ~= gen then return -1 end
if redis.call('GET', KEYS[2]) == gen then return -2 end
local now, nk = tonumber(ARGV[2]), tonumber(ARGV[4])
local n = 0
for i = 5 + nk, #ARGV, 4 do
  local k = tonumber(ARGV[i])
  local window = tonumber(ARGV[5 + k])
  local ts, amount = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  if ts > now - window and amount > 0 then
    local zkey, hkey = KEYS[3 + 2 * k], KEYS[4 + 2 * k]
    redis.call('ZADD', zkey, 'GT', ts, ARGV[i + 1])
    redis.call('HINCRBY', hkey, ARGV[i + 1], int(amount))
    redis.call('HINCRBY', hkey, 'total', int(amount))
    redis.call('PEXPIRE', zkey, window + 5000)
    redis.call('PEXPIRE', hkey, window + 5000)
    n = n + 1
  end
end
redis.call('SET', KEYS[2], gen, 'PX', ARGV[3])
return n
"""
)
