-- wrk script for bench/premium_rush: first-come premium purchases, POST
-- /v1/campaigns/<id>/premium-purchases.
--
-- Driven by bench/premium_rush.py, which generates the data file named by BENCH_DATA:
--   auths = { "Bearer <resident token>", ... }   one per funded resident
--   path  = "/v1/campaigns/<id>/premium-purchases"
--   total = requests to send in all (more than the residents: some try again)
-- Environment: BENCH_TAG (makes Idempotency-Keys unique across runs), BENCH_THREADS (wrk -t).
--
-- Request i (over all threads) is for resident (i × 7919) mod #auths — every resident once,
-- then again for i ≥ #auths — and asks for 2 sets when i is even, 1 when odd. Each thread
-- sends its share (i = tid, tid + threads, …) and stops once every answer is in, so the
-- run ends when the rush is over. Latency samples are purchases only (sold-out answers included).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

dofile(assert(os.getenv("BENCH_DATA"), "BENCH_DATA is not set"))
local tag = os.getenv("BENCH_TAG") or "rush"
local n_threads = tonumber(os.getenv("BENCH_THREADS") or "2")
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
  sent, ok, bad, answered = 0, 0, 0, 0
  statuses = {}
  first_error = ""
  t_first, t_last = 0, 0
end

function delay()
  if tid * 1 + n_threads * sent >= total then
    return 3600000 -- this thread's share is sent
  end
  return 0
end

function request()
  if tid == 0 and not verified then
    verified = true -- wrk's script check; never sent
    return wrk.format("GET", "/healthz")
  end
  local i = tid + n_threads * sent
  if i >= total then
    return wrk.format("GET", "/healthz") -- not reached: delay() holds the connection first
  end
  if t_first == 0 then t_first = now() end
  sent = sent + 1
  local resident = (i * 7919) % n_auths + 1
  local headers = {
    ["Authorization"] = auths[resident],
    ["Idempotency-Key"] = string.format("%s-%d", tag, i),
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", path, headers, bodies[i % 2 + 1])
end

function response(status, headers, body)
  t_last = now()
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    local t = string.match(body or "", '"type":"urn:chiikipay:problem:([%w-]+)"') or tostring(status)
    local key = tostring(status) .. " " .. t
    statuses[key] = (statuses[key] or 0) + 1
    if first_error == "" and status >= 500 then first_error = string.sub(body or "", 1, 300) end
  end
  if answered >= sent and tid + n_threads * sent >= total then
    wrk.thread:stop()
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local parts = {}
  for _, t in ipairs(threads) do
    local codes = {}
    for key, count in pairs(t:get("statuses") or {}) do
      table.insert(codes, string.format('%s:%d', json_string(key), count))
    end
    table.insert(parts, string.format(
      '{"tid":%d,"sent":%d,"ok":%d,"bad":%d,"t_first":%.6f,"t_last":%.6f,"statuses":{%s},"first_error":%s}',
      t:get("tid"), t:get("sent"), t:get("ok"), t:get("bad"), t:get("t_first"), t:get("t_last"),
      table.concat(codes, ","), json_string(t:get("first_error") or "")))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"threads":[%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    table.concat(parts, ",")))
end
