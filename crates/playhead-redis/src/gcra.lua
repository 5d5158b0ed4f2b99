-- GCRA for one key, atomically (Redis runs a script without interleaving other commands).
-- The arithmetic is playhead-core's `rate::gcra`: this script only decides and stores the TAT;
-- the caller rebuilds the full decision (remaining, reset, retry-after) from the core function.
--
-- Instants are nanoseconds since the Unix epoch, stored as a decimal string. Lua 5.1 numbers are
-- doubles (exact integers only below 2^53, about 104 days of nanoseconds), so an instant is never
-- used whole: it is split into seconds and nanoseconds, and only differences (bounded by the
-- window) are computed in nanoseconds.
--
-- KEYS[1]  the key's TAT
-- ARGV[1]  now, whole seconds        ARGV[2]  now, nanoseconds within that second
-- ARGV[3]  nanoseconds this request adds to the TAT (the core's `Quota::increment_ns`)
-- ARGV[4]  the window in nanoseconds ARGV[5]  '1' when the cost exceeds the limit (never allowed)
-- Returns {allowed (0|1), how far the stored TAT was ahead of now before this request (ns, >= 0)}.
local now_s = tonumber(ARGV[1])
local now_n = tonumber(ARGV[2])
local inc = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local ahead = 0
local tat = redis.call('GET', KEYS[1])
if tat then
  local tat_s, tat_n = 0, 0
  if #tat > 9 then
    tat_s = tonumber(string.sub(tat, 1, -10))
    tat_n = tonumber(string.sub(tat, -9))
  else
    tat_n = tonumber(tat)
  end
  ahead = (tat_s - now_s) * 1000000000 + (tat_n - now_n)
  if ahead < 0 then ahead = 0 end
end
local new_ahead = ahead + inc
if ARGV[5] == '1' or new_ahead > window then
  return {0, ahead}
end
local total = now_n + new_ahead
local s = now_s + math.floor(total / 1000000000)
local n = total % 1000000000
-- The key means nothing once its TAT has passed, but the TAT is in the callers' clock and the
-- expiry in Redis's: a key that expired early (a replica's clock behind Redis's) would hand out a
-- fresh quota. The expiry therefore has a minute of slack for clock differences.
redis.call('SET', KEYS[1], string.format('%d%09d', s, n), 'PX', math.ceil(new_ahead / 1000000) + 60000)
return {1, ahead}
