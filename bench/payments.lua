-- wrk script for bench/payments: static-MPM payments, POST /v1/payments.
--
-- Driven by bench/payments.py, which generates the data file named by BENCH_DATA:
--   auths  = { "Bearer <resident token>", ... }   one per funded resident
--   bodies = { '{"qr":"<store payload>","amount":100}', ... }   one per merchant's store
-- Environment: BENCH_DURATION (seconds of sending), BENCH_HOT ("1": every payment to bodies[1]),
-- BENCH_TAG (makes Idempotency-Keys unique across cases and runs).
--
-- Each connection sends payments for BENCH_DURATION seconds, then stops sending (delay() returns
-- an hour) and the payments still in flight are answered while wrk runs on for the drain time.
-- So every payment the server commits is one whose response wrk saw, and the count of new
-- payments can be checked against the count of 2xx exactly. Latency samples are payments only.
-- The drain must stay below the server's keep-alive timeout (uvicorn: 5 s), or idle connections
-- closed by the server show up as wrk read errors.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now() -- CLOCK_MONOTONIC, seconds
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

dofile(assert(os.getenv("BENCH_DATA"), "BENCH_DATA is not set"))
local duration = tonumber(os.getenv("BENCH_DURATION") or "20")
local hot = os.getenv("BENCH_HOT") == "1"
local tag = os.getenv("BENCH_TAG") or "bench"
local n_auths, n_bodies = #auths, #bodies

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(1000003 * (tid + 1) + math.floor(now() * 1000) % 1000003)
  key_prefix = string.format("%s-t%d-", tag, tid)
  sent, ok, bad = 0, 0, 0
  statuses = {}
  first_error = ""
  t_first, t_last = 0, 0
  deadline = nil
end

function delay()
  if deadline ~= nil and now() >= deadline then
    return 3600000 -- stop sending; wrk's own duration ends the run after the drain
  end
  return 0
end

function request()
  if tid == 0 and not verified then
    -- wrk calls request() once on thread 0's state to check the script; that one is never sent.
    verified = true
    return wrk.format("POST", "/v1/payments", { ["Idempotency-Key"] = key_prefix .. "verify" }, bodies[1])
  end
  local t = now()
  if deadline == nil then
    deadline = t + duration
    t_first = t
  end
  sent = sent + 1
  local body = hot and bodies[1] or bodies[math.random(n_bodies)]
  local headers = {
    ["Authorization"] = auths[math.random(n_auths)],
    ["Idempotency-Key"] = key_prefix .. sent,
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", "/v1/payments", headers, body)
end

function response(status, headers, body)
  t_last = now()
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    statuses[status] = (statuses[status] or 0) + 1
    if first_error == "" then
      first_error = string.sub(body or "", 1, 300)
    end
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
    for code, count in pairs(t:get("statuses") or {}) do
      table.insert(codes, string.format('"%d":%d', code, count))
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
