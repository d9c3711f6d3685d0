-- wrk script of `make bench-api` (bench/bench_api.py):
--   wrk -t THREADS -c CONNECTIONS -d SECONDS -s bench/wrk_bbox.lua http://HOST:PORT -- PATHS_FILE THREADS
-- GETs the request paths listed in PATHS_FILE (one a line, e.g. /collections/…/items?bbox=…&limit=100), each
-- thread cycling through the whole list from its own starting point. Every response outside 200-299 counts as an
-- error. done() prints one line, "bench-api-wrk {json}", with the figures the bench reads (latencies in µs).

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      paths[#paths + 1] = line
    end
  end
  if #paths == 0 then
    error("no request paths in " .. tostring(args[1]))
  end
  local nthreads = tonumber(args[2]) or 1
  position = math.floor(index * #paths / nthreads)
  responses = 0
  non2xx = 0
end

function request()
  position = position % #paths + 1
  return wrk.format("GET", paths[position])
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local seen, bad = 0, 0
  for _, thread in ipairs(threads) do
    seen = seen + thread:get("responses")
    bad = bad + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'bench-api-wrk {"requests": %d, "responses": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, seen, summary.duration, summary.bytes, bad,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
