-- wrk script for the side-by-side runs: requests cycled from a file, a JSON summary at the end.
-- Usage: wrk ... -s post.lua URL -- METHOD [BODIES_FILE]
--   BODIES_FILE: one request body per line (compact JSON has no raw newline). With one line
--   every request is the same; with several, each wrk thread cycles through them in order.
-- Every request is prepared in init(); request() only picks the next one.
-- The summary line starts with "BENCH_JSON " so tests/bench/loadgen.py can find it.

local prepared, count, next_index = {}, 0, 0

function init(args)
  local method = args[1] or "GET"
  if args[2] then
    local headers = { ["Content-Type"] = "application/json" }
    for line in io.lines(args[2]) do
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

-- done(): the shared BENCH_JSON summary, from report.lua next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./") .. "report.lua")
