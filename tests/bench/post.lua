-- wrk script for the side-by-side runs: requests cycled from a file, every answer checked, a
-- JSON summary at the end.
-- Usage: wrk ... -s post.lua URL -- METHOD [BODIES_FILE|-] [STATUS|-] [HEADER|-] [BODY_TEXT|-]
--   BODIES_FILE: one request body per line (compact JSON has no raw newline). With one line
--   every request is the same; with several, each wrk thread cycles through them in order.
--   STATUS: the status every answer must have; HEADER: a response header every answer must
--   carry (e.g. Retry-After); BODY_TEXT: a string every answer's body must contain. An answer
--   that misses any of them counts in "unexpected" (wrk's own "status" error counts only >399).
-- Extra request headers come from wrk's -H. Every request is prepared in init(); request()
-- only picks the next one. The summary line starts with "BENCH_JSON " (tests/bench/loadgen.py).

local prepared, count, next_index = {}, 0, 0
local want_status, want_header, want_text = nil, nil, nil
unexpected, last_unexpected = 0, ""

local function given(value)
  if value == nil or value == "-" or value == "" then return nil end
  return value
end

function init(args)
  local method = args[1] or "GET"
  local bodies = given(args[2])
  want_status = given(args[3]) and tonumber(args[3])
  want_header = given(args[4]) and string.lower(args[4])
  want_text = given(args[5])
  if bodies then
    local headers = { ["Content-Type"] = "application/json" }
    for line in io.lines(bodies) do
      count = count + 1
      prepared[count] = wrk.format(method, nil, headers, line)
    end
  else
    count = 1
    prepared[1] = wrk.format(method)
  end
end

function request()
  next_index = next_index % count + 1
  return prepared[next_index]
end

function response(status, headers, body)
  local ok = want_status == nil or status == want_status
  if ok and want_header then
    ok = false
    for name, _ in pairs(headers) do
      if string.lower(name) == want_header then ok = true; break end
    end
  end
  if ok and want_text then ok = string.find(body, want_text, 1, true) ~= nil end
  if not ok then
    unexpected = unexpected + 1
    last_unexpected = status .. " " .. string.sub(body, 1, 120)
  end
end

-- done(): the shared BENCH_JSON summary, from report.lua next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "report.lua")
