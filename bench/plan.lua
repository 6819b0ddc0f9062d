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
-- BENCH_RATE and BENCH_T0 (arrivals, below).
--
-- Request i (over all threads, from 0) is the plan's i-th: a POST with the Idempotency-Key
-- "<tag>-<i>". Each thread sends its share (i = tid, tid + threads, …) and stops once every
-- answer is in, so the run ends when the plan is done.
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
local total = #plan / 4

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  sent, reserved, ready, answered = 0, 0, 0, 0
  share = math.floor((total - tid - 1) / n_threads) + 1
  started = {} -- request index -> when its latency starts
  -- Per kind (by its index): answers, first sent, last answered; latencies (seconds) beside
  -- their kinds; refusals by "<kind index> <status> <problem type>". Flat tables only: wrk's
  -- thread:get() crashes on nested ones.
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
    wrk.thread:stop()
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end)
  return '"' .. s .. '"'
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p / 100))]
end

local function latency(sorted)
  return string.format('{"answers":%d,"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f}', #sorted,
    percentile(sorted, 50) * 1000, percentile(sorted, 90) * 1000, percentile(sorted, 99) * 1000,
    (sorted[#sorted] or 0) * 1000)
end

function done(summary, _, _)
  local parts, all, kind_parts = {}, {}, {}
  for _, t in ipairs(threads) do
    table.insert(parts, string.format('{"tid":%d,"sent":%d,"t_first":%.6f,"t_last":%.6f,"first_error":%s}',
      t:get("tid"), t:get("sent"), t:get("t_first"), t:get("t_last"), json_string(t:get("first_error") or "")))
  end
  -- Each kind over all threads: answers, statuses, latency, and when it was first sent and last answered.
  local ok, bad, first, last, kind_lats, codes = {}, {}, {}, {}, {}, {}
  for k = 1, #kinds do
    ok[k], bad[k], first[k], last[k], kind_lats[k], codes[k] = 0, 0, 0, 0, {}, {}
  end
  for _, t in ipairs(threads) do
    local t_ok, t_bad, t_first, t_last = t:get("ok_by"), t:get("bad_by"), t:get("first_by"), t:get("last_by")
    for k = 1, #kinds do
      ok[k], bad[k] = ok[k] + t_ok[k], bad[k] + t_bad[k]
      if t_first[k] > 0 and (first[k] == 0 or t_first[k] < first[k]) then first[k] = t_first[k] end
      if t_last[k] > last[k] then last[k] = t_last[k] end
    end
    local t_lats, t_kinds = t:get("lats"), t:get("lat_kinds")
    for j, v in ipairs(t_lats) do
      table.insert(kind_lats[t_kinds[j]], v)
      table.insert(all, v)
    end
    for key, count in pairs(t:get("statuses")) do
      local k, rest = string.match(key, "^(%d+) (.*)$")
      k = tonumber(k)
      codes[k][rest] = (codes[k][rest] or 0) + count
    end
  end
  for k, name in ipairs(kinds) do
    table.sort(kind_lats[k])
    local parts_k = {}
    for key, count in pairs(codes[k]) do table.insert(parts_k, string.format('%s:%d', json_string(key), count)) end
    table.insert(kind_parts, string.format(
      '%s:{"ok":%d,"bad":%d,"t_first":%.6f,"t_last":%.6f,"statuses":{%s},"latency_ms":%s}',
      json_string(name), ok[k], bad[k], first[k], last[k], table.concat(parts_k, ","), latency(kind_lats[k])))
  end
  table.sort(all)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_ms":%s,"kinds":{%s},"threads":[%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency(all), table.concat(kind_parts, ","), table.concat(parts, ",")))
end
