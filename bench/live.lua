-- Live ingest for wrk (`playhead-bench all` runs it; decision 0110): many devices, each request one
-- heartbeat from the next device in turn, with that device's own profile and token (so
-- per-principal quotas and in-flight caps behave as in production), a fresh event id, the
-- position moving forward. The same script drives Playhead and the bare parse-and-202 baseline.
-- Arguments (after `--`): the devices file ("profile_id token" per line) and an 8-hex-digit salt
-- that makes this run's event ids unique.

local devices = {}
local count = 0
local sent = 0
local salt = "00000000"
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function init(args)
  salt = args[2]
  for line in io.lines(args[1]) do
    local profile, token = line:match("^(%S+)%s+(%S+)$")
    if profile then
      count = count + 1
      devices[count] = {
        path = "/v1/profiles/" .. profile .. "/events",
        headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" },
        title = "bench-" .. ((count - 1) % 400),
      }
    end
  end
end

function request()
  sent = sent + 1
  local i = ((sent * 7 + (tid or 0)) % count) + 1
  local d = devices[i]
  local position = (math.floor(sent / count) * 10000) % 7000000
  local id = string.format("%s-%04x-4000-8000-%012x", salt, tid or 0, sent)
  local body = string.format(
    '{"events":[{"event_id":"%s","title_id":"%s","kind":"heartbeat","position_ms":%d,"occurred_at":"%s","device_id":"tv"}]}',
    id, d.title, position, os.date("!%Y-%m-%dT%H:%M:%SZ"))
  return wrk.format("POST", d.path, d.headers, body)
end
