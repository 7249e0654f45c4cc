-- wrk script for the Mecha benchmark harness (Benchmarks/bench.py sets the environment).
--
--   BENCH_RATE        total requests per second over all connections; 0 = saturated (no pacing)
--   BENCH_THREADS     wrk's -t (the rate is split between threads)
--   BENCH_KIND        static | state-get | state-set
--   BENCH_METHOD      static: the method (POST)
--   BENCH_BODY_BYTES  static: request body size; state-set: size of the stored JSON value
--   BENCH_HEADERS     extra headers, "name: value" separated by "|"
--   BENCH_STORE       state store name; BENCH_KEYS keys k0…k(N-1) are cycled through
--   BENCH_OUT         where done() writes the JSON summary
--
-- Pacing: wrk calls delay() before each request of a connection; each thread keeps a schedule of
-- evenly spaced send slots (1000 rps over 2 threads = one slot every 2 ms per thread) and every
-- connection that becomes free takes the next slot. When behind schedule it sends at once (at
-- most 50 ms of backlog is kept). wrk has millisecond timers, so a request may leave up to 0.5 ms
-- off its slot; the rate over the run is exact. Latency is measured by wrk from the send.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local rate = tonumber(env("BENCH_RATE", "0"))
local threads = tonumber(env("BENCH_THREADS", "1"))
local kind = env("BENCH_KIND", "static")
local body_bytes = tonumber(env("BENCH_BODY_BYTES", "1024"))
local store = env("BENCH_STORE", "statestore")
local keys = tonumber(env("BENCH_KEYS", "1000"))

for header in string.gmatch(env("BENCH_HEADERS", ""), "[^|]+") do
  local name, value = string.match(header, "^%s*([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end

-- A JSON value of exactly n bytes: {"d":"xxxx…"}
local function json_value(n)
  return '{"d":"' .. string.rep("x", math.max(0, n - 8)) .. '"}'
end

if kind == "static" then
  wrk.method = env("BENCH_METHOD", "POST")
  if body_bytes > 0 then
    wrk.body = string.rep("x", body_bytes)
    wrk.headers["Content-Type"] = "application/octet-stream"
  end
end

local thread_index = 0
function setup(thread)
  thread:set("bench_tid", thread_index)
  thread_index = thread_index + 1
end

local counter = 0
local set_body_suffix
function init(args)
  counter = (bench_tid or 0) * 7919
  if kind == "state-set" then
    set_body_suffix = '","value":' .. json_value(body_bytes) .. '}]'
  end
end

if kind == "state-get" then
  function request()
    counter = counter + 1
    return wrk.format("GET", "/v1.0/state/" .. store .. "/k" .. (counter % keys))
  end
elseif kind == "state-set" then
  function request()
    counter = counter + 1
    local body = '[{"key":"k' .. (counter % keys) .. set_body_suffix
    return wrk.format("POST", "/v1.0/state/" .. store, {["Content-Type"] = "application/json"}, body)
  end
end

local period_ms = rate > 0 and (1000.0 * threads / rate) or 0
local next_slot = nil
if rate > 0 then
  function delay()
    local t = now_ms()
    if next_slot == nil or next_slot < t - 50 then next_slot = t end
    next_slot = next_slot + period_ms
    local d = next_slot - t
    if d < 0 then return 0 end
    return math.floor(d + 0.5)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local out = string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max)
  local path = os.getenv("BENCH_OUT")
  if path and path ~= "" then
    local f = assert(io.open(path, "w"))
    f:write(out)
    f:close()
  else
    io.write(out)
  end
end
