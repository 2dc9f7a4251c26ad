-- The end-of-run summary both wrk scripts print: one line starting with "BENCH_JSON " that
-- tests/bench/loadgen.py parses. Loaded with dofile() by post.lua and storm.lua. "unexpected"
-- sums the per-thread counters of answers that failed post.lua's checks (0 for storm.lua, which
-- checks its answers itself).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local errors = summary.errors
  local unexpected, sample = 0, ""
  for _, thread in ipairs(threads) do
    unexpected = unexpected + (tonumber(thread:get("unexpected")) or 0)
    local last = thread:get("last_unexpected")
    if last and last ~= "" then sample = last end
  end
  sample = string.gsub(sample, "[^%w .,:;_/=-]", "_") -- JSON-safe without escaping
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"unexpected":%d,"unexpected_sample":"%s",' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    unexpected, sample,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
