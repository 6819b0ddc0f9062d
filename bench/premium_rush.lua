-- wrk script for bench/premium_rush: first-come premium purchases, POST
-- /v1/campaigns/<id>/premium-purchases.
--
-- Driven by bench/premium_rush.py, which generates the data file named by BENCH_DATA:
--   auths = { "Bearer <resident token>", ... }   one per funded resident
--   path  = "/v1/campaigns/<id>/premium-purchases"
--   total = requests to send in all (more than the residents: some try again)
-- Environment: BENCH_TAG (makes Idempotency-Keys unique across runs), BENCH_THREADS (wrk -t),
-- BENCH_RATE and BENCH_T0 (arrivals, below).
--
-- Request i (over all threads) is for resident (i × 7919) mod #auths — every resident once,
-- then again for i ≥ #auths — and asks for 2 sets when i is even, 1 when odd. Each thread
-- sends its share (i = tid, tid + threads, …) and stops once every answer is in, so the
-- run ends when the rush is over.
--
-- Arrivals. With BENCH_RATE > 0 (requests/s over all threads) request i is due at
-- BENCH_T0 + i / BENCH_RATE (CLOCK_MONOTONIC seconds, as Python's time.monotonic()): residents
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
local tag = os.getenv("BENCH_TAG") or "rush"
local n_threads = tonumber(os.getenv("BENCH_THREADS") or "2")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local t0 = tonumber(os.getenv("BENCH_T0") or "0")
local n_auths = #auths
local bodies = { '{"sets":2}', '{"sets":1}' }

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  sent, reserved, ready, ok, bad, answered = 0, 0, 0, 0, 0, 0
  share = math.floor((total - tid - 1) / n_threads) + 1
  started = {} -- request index -> when its latency starts
  lats = {}    -- seconds, one per answer
  statuses = {}
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
  local resident = (i * 7919) % n_auths + 1
  local headers = {
    ["Authorization"] = auths[resident],
    ["Idempotency-Key"] = string.format("%s-%d", tag, i),
    ["X-Request-ID"] = string.format("b%d", i),
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", path, headers, bodies[i % 2 + 1])
end

function response(status, headers, body)
  local rid = headers["x-request-id"] or headers["X-Request-ID"] or ""
  local i = tonumber(string.match(rid, "^b(%d+)$") or "")
  if i == nil or started[i] == nil then
    return -- a GET /healthz
  end
  local t = now()
  t_last = t
  table.insert(lats, t - started[i])
  started[i] = nil
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    local p = string.match(body or "", '"type":"urn:chiikipay:problem:([%w-]+)"') or tostring(status)
    local key = tostring(status) .. " " .. p
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

function done(summary, latency, requests)
  local parts, all = {}, {}
  for _, t in ipairs(threads) do
    local codes = {}
    for key, count in pairs(t:get("statuses") or {}) do
      table.insert(codes, string.format('%s:%d', json_string(key), count))
    end
    for _, v in ipairs(t:get("lats") or {}) do table.insert(all, v) end
    table.insert(parts, string.format(
      '{"tid":%d,"sent":%d,"ok":%d,"bad":%d,"t_first":%.6f,"t_last":%.6f,"statuses":{%s},"first_error":%s}',
      t:get("tid"), t:get("sent"), t:get("ok"), t:get("bad"), t:get("t_first"), t:get("t_last"),
      table.concat(codes, ","), json_string(t:get("first_error") or "")))
  end
  table.sort(all)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_ms":{"answers":%d,"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f},"threads":[%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    #all, percentile(all, 50) * 1000, percentile(all, 90) * 1000, percentile(all, 99) * 1000,
    (all[#all] or 0) * 1000, table.concat(parts, ",")))
end
