-- wrk script for the resync storm: send each pre-generated sync request exactly once, check
-- every answer, and report the wall time from the first request to the last answer.
-- Usage: wrk -t1 -cN -d<bound> -s storm.lua URL -- BODIES_FILE ENDPOINTS_FILE
--   BODIES_FILE: one compact JSON sync request per line (compact JSON has no raw newline).
--   ENDPOINTS_FILE: the status.endpoint each request must be answered with, same order.
-- After the last answer the thread prints "STORM_DONE {json}" and stops; the driver then ends
-- wrk with SIGINT (wrk otherwise sleeps out its -d bound). Once every body has been sent,
-- connections that are still open ask GET /healthz (cheap, not counted) until the end.
-- Designed for one wrk thread (-t1): the counters are per thread.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC, the same clock as Python's time.monotonic
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local prepared, wanted, seen = {}, {}, {}
local total, sent = 0, 0
local answered, ok, not_ok, wrong, distinct = 0, 0, 0, 0, 0
local first, filler = nil, nil
local verified = false
local ENDPOINT = '"endpoint":"'

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(args[1]) do
    total = total + 1
    prepared[total] = wrk.format("POST", "/sync", headers, line)
  end
  for line in io.lines(args[2]) do
    wanted[line] = true
  end
  filler = wrk.format("GET", "/healthz")
end

function request()
  -- wrk calls request() once right after init() to verify it (script_verify_request, thread 0
  -- only, which is why this script runs with -t1); that request is never sent.
  if not verified then
    verified = true
    return filler
  end
  if first == nil then first = now() end
  if sent >= total then return filler end
  sent = sent + 1
  return prepared[sent]
end

local function endpoint_of(body)
  local at = string.find(body, ENDPOINT, 1, true)
  if at == nil then return nil end
  local start = at + #ENDPOINT
  local stop = string.find(body, '"', start, true)
  return stop and string.sub(body, start, stop - 1)
end

function response(status, headers, body)
  if string.find(body, '"status":"alive"', 1, true) then return end -- a filler answer
  answered = answered + 1
  if status == 200 then ok = ok + 1 else not_ok = not_ok + 1 end
  local endpoint = endpoint_of(body)
  if endpoint == nil or not wanted[endpoint] then
    wrong = wrong + 1
  elseif not seen[endpoint] then
    seen[endpoint] = true
    distinct = distinct + 1
  end
  if answered == total then
    local finished = now()
    io.write(string.format(
      'STORM_DONE {"requests":%d,"ok":%d,"not_ok":%d,"wrong":%d,"distinct":%d,' ..
      '"first":%.6f,"last":%.6f,"wall_s":%.6f}\n',
      answered, ok, not_ok, wrong, distinct, first, finished, finished - first))
    io.flush()
    wrk.thread:stop()
  end
end

-- done(): the shared BENCH_JSON summary, from report.lua next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "report.lua")
