-- wrk script: GET /segments/get-for-user for random seeded users, the HTTP
-- twin of segments-grpc-load --mode=get. Users are those of bench/seed.sql:
-- 00000000-0000-4000-8000-%012x for i in 0 .. users-1.
local users = tonumber(os.getenv("BENCH_USERS") or "100000")

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed)
  -- The token the bench scripts point SEGMENTS_BENCH_TOKEN_FILE at, if any.
  local file = os.getenv("SEGMENTS_BENCH_TOKEN_FILE")
  local f = file and file ~= "" and io.open(file)
  if f then
    wrk.headers["Authorization"] = "Bearer " .. f:read("*l")
    f:close()
  end
end

function request()
  local i = math.random(0, users - 1)
  return wrk.format("GET", string.format("/segments/get-for-user?userID=00000000-0000-4000-8000-%012x", i))
end

-- summary.errors.status counts answers that are not 2xx/3xx.
function done(summary, latency, requests)
  io.write(string.format("WRK rps=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
      summary.errors.write + summary.errors.timeout))
end
