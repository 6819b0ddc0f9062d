-- wrk script for a planned list of requests, each sent once: bench/premium_rush (first-come
-- premium purchases) and bench/coupon_rush (coupon claims; payments with and without a coupon).
--
-- Driven by a Python driver, which generates the data file named by BENCH_DATA:
--   auths  = { "Bearer <token>", ... }
--   paths  = { "/v1/...", ... }
--   bodies = { '{"sets":2}', ... }          JSON bodies
--   kinds  = { "purchase", ... }            names the results are counted under
--   plan   = { a, p, b, k,  a, p, b, k, … } four indices into the tables above per request
--            (flat, so that a plan of tens of thousands loads fast)
-- Environment: BENCH_TAG (makes Idempotency-Keys unique across runs), BENCH_THREADS (wrk -t),
-- BENCH_RATE and BENCH_T0 (arrivals, below), BENCH_OUT (where each thread writes its results).
--
-- Request i (over all threads, from 0) is the plan's i-th: a POST with the Idempotency-Key
-- "<tag>-<i>". Each thread sends its share (i = tid, tid + threads, …) and, once every answer
-- is in, writes what it saw to BENCH_OUT.<tid>.json and stops; the driver ends wrk when every
-- thread has written (wrk itself waits out -d, and its done() has been seen to crash after
-- threads stopped early, so nothing is left to it).
--
-- Arrivals. With BENCH_RATE > 0 (requests/s over all threads) request i is due at
-- BENCH_T0 + i / BENCH_RATE (CLOCK_MONOTONIC seconds, as Python's time.monotonic()): clients
-- arrive on a schedule whether or not the server keeps up, and a request that waits for a free
-- connection is late. Its latency is counted from when it was due (or from when it was sent, if
-- the schedule let it go early), so a slow server is not hidden by fewer requests sent
-- ("coordinated omission"). With BENCH_RATE = 0 every connection sends as soon as it has its
-- answer (a closed loop at full speed). The answer is matched to its request by X-Request-ID,
-- which the server echoes. Each connection's first request is a GET /healthz that is not
-- counted (wrk sends it before asking delay(), so it cannot be scheduled).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

dofile(assert(os.getenv("BENCH_DATA"), "BENCH_DATA is not set"))
local tag = os.getenv("BENCH_TAG") or "plan"
local n_threads = tonumber(os.getenv("BENCH_THREADS") or "2")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local t0 = tonumber(os.getenv("BENCH_T0") or "0")
local out = assert(os.getenv("BENCH_OUT"), "BENCH_OUT is not set")
local total = #plan / 4

local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  sent, reserved, ready, answered = 0, 0, 0, 0
  share = math.floor((total - tid - 1) / n_threads) + 1
  started = {} -- request index -> when its latency starts
  -- Per kind (by its index): answers, first sent, last answered; latencies (seconds) beside
  -- their kinds; refusals by "<kind index> <status> <problem type>" (see finish()).
  ok_by, bad_by, first_by, last_by = {}, {}, {}, {}
  for k = 1, #kinds do
    ok_by[k], bad_by[k], first_by[k], last_by[k] = 0, 0, 0, 0
  end
  lats, lat_kinds, statuses = {}, {}, {}
  first_error = ""
  t_first, t_last = 0, 0
end

function delay()
  if reserved >= share then
    return 3600000 -- this thread's share is sent
  end
  local i = tid + n_threads * reserved
  reserved = reserved + 1
  ready = ready + 1
  if rate == 0 then return 0 end
  local wait = t0 + i / rate - now()
  return wait > 0 and math.floor(wait * 1000) or 0
end

function request()
  if ready == 0 or sent >= share then
    return wrk.format("GET", "/healthz") -- a connection's first request, and wrk's script check
  end
  ready = ready - 1
  local i = tid + n_threads * sent
  sent = sent + 1
  local t = now()
  if t_first == 0 then t_first = t end
  started[i] = rate == 0 and t or math.min(t, t0 + i / rate)
  local k = plan[4 * i + 4]
  if first_by[k] == 0 then first_by[k] = t end
  local headers = {
    ["Authorization"] = auths[plan[4 * i + 1]],
    ["Idempotency-Key"] = string.format("%s-%d", tag, i),
    ["X-Request-ID"] = string.format("b%d", i),
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", paths[plan[4 * i + 2]], headers, bodies[plan[4 * i + 3]])
end

function response(status, headers, body)
  local rid = headers["x-request-id"] or headers["X-Request-ID"] or ""
  local i = tonumber(string.match(rid, "^b(%d+)$") or "")
  if i == nil or started[i] == nil then
    return -- a GET /healthz
  end
  local t = now()
  t_last = t
  local k = plan[4 * i + 4]
  last_by[k] = t
  table.insert(lats, t - started[i])
  table.insert(lat_kinds, k)
  started[i] = nil
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok_by[k] = ok_by[k] + 1
  else
    bad_by[k] = bad_by[k] + 1
    local p = string.match(body or "", '"type":"urn:chiikipay:problem:([%w-]+)"') or tostring(status)
    local key = string.format("%d %d %s", k, status, p)
    statuses[key] = (statuses[key] or 0) + 1
    if first_error == "" and status >= 500 then first_error = string.sub(body or "", 1, 300) end
  end
  if answered >= share then
    finish()
    wrk.thread:stop()
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end)
  return '"' .. s .. '"'
end

local function numbers(list, format)
  local out = {}
  for j, v in ipairs(list) do out[j] = string.format(format, v) end
  return "[" .. table.concat(out, ",") .. "]"
end

-- This thread's results: per kind (by index into `kinds`) its answers and when it was first
-- sent and last answered, every latency (seconds) with its kind, refusals by "<kind index>
-- <status> <problem type>".
function finish()
  local names, codes = {}, {}
  for j, name in ipairs(kinds) do names[j] = json_string(name) end
  for key, count in pairs(statuses) do table.insert(codes, string.format("%s:%d", json_string(key), count)) end
  local path = string.format("%s.%d.json", out, tid)
  local f = assert(io.open(path .. ".part", "w"))
  f:write(string.format(
    '{"tid":%d,"sent":%d,"t_first":%.6f,"t_last":%.6f,"first_error":%s,"kinds":[%s],"ok":%s,"bad":%s,'
    .. '"first":%s,"last":%s,"lats":%s,"lat_kinds":%s,"statuses":{%s}}\n',
    tid, sent, t_first, t_last, json_string(first_error), table.concat(names, ","), numbers(ok_by, "%d"),
    numbers(bad_by, "%d"), numbers(first_by, "%.6f"), numbers(last_by, "%.6f"), numbers(lats, "%.6f"),
    numbers(lat_kinds, "%d"), table.concat(codes, ",")))
  f:close()
  assert(os.rename(path .. ".part", path)) -- whole, or not there: the driver reads it once it exists
end
