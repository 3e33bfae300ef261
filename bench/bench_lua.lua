-- bench_lua.lua -- the Lua module's figures: tiny tasks submitted from Lua, and the per-task
-- overhead of pool:begin/wait on a warm pool, beside a plain Lua loop calling the same
-- function (the bound) and Lua Lanes' lane-per-task rate as measured for the project (18-22k
-- tasks/s; Lanes is not packaged in Debian, so it cannot run here).
--   LUA_CPATH_5_4='build/release/lua/?.so;;' lua5.4 bench/bench_lua.lua [tasks]
local rs = require "runspace"
local now = rs.monotonic
local N = tonumber(arg and arg[1]) or 100000
local LANES_RATE = 22000 -- the top of Lanes' measured 18-22k tasks/s
local THREADS = 2

local function row(metric, value, target, peer, ratio)
  print(string.format("%-52s %-14s %-12s %-34s %s", metric, value, target or "", peer or "",
                      ratio or ""))
end

-- The bound: a plain loop calling the function each task runs.
local function task(x) return x * 2 end
local best_loop = math.huge
for _ = 1, 3 do
  local t0 = now()
  local s = 0
  for i = 1, N do s = s + task(i) end
  best_loop = math.min(best_loop, now() - t0)
  assert(s > 0)
end
local loop_rate = N / best_loop

local input = {}
for i = 1, N do input[i] = i end
local pool = rs.pool{max = THREADS, min = THREADS}

-- 1. N tasks through for-each (batched dispatch), best of 3.
local best_fe = math.huge
for _ = 1, 3 do
  local t0 = now()
  local n = 0
  for rec in rs.foreach{input = input, pool = pool, script = "return _ * 2"} do
    n = n + 1
    assert(rec.status == "ok")
  end
  assert(n == N)
  best_fe = math.min(best_fe, now() - t0)
end
local fe_rate = N / best_fe

-- 2. N tasks through pool:begin, a window of handles in flight, best of 3.
local WINDOW = 512
local best_begin = math.huge
for _ = 1, 3 do
  local t0 = now()
  local ring = {}
  for i = 1, N do
    local k = i % WINDOW + 1
    if ring[k] then assert(ring[k]:wait(60)) end
    ring[k] = pool:begin("return ... * 2", i)
  end
  for k = 1, WINDOW do if ring[k] then assert(ring[k]:wait(60)) end end
  best_begin = math.min(best_begin, now() - t0)
end
local begin_rate = N / best_begin

-- 3. One task at a time: begin -> wait round trips on the warm pool.
local M = math.min(N, 20000)
local times = {}
for i = 1, 1000 do pool:begin("return ... * 2", i):wait(60) end -- warm
for i = 1, M do
  local t0 = now()
  local v = pool:begin("return ... * 2", i):wait(60)
  times[i] = now() - t0
  assert(v == i * 2)
end
table.sort(times)
local median, p99 = times[M // 2], times[math.floor(M * 0.99)]
local call_ns = best_loop / N * 1e9
pool:close(60)

print(string.format("runspace %s, %d tasks, pool of %d runspaces", rs.version, N, THREADS))
row("metric", "value", "target", "peer (same run)", "ratio")
row("plain Lua loop calling the task function", string.format("%.1f M/s", loop_rate / 1e6),
    "bound", string.format("%.0f ns per call", call_ns))
row(string.format("%d tiny tasks via rs.foreach (best of 3)", N),
    string.format("%.0f k/s", fe_rate / 1e3), ">= 110 k/s",
    string.format("Lanes lane-per-task %.0f k/s", LANES_RATE / 1e3),
    string.format("%.1fx Lanes, %.3fx of the loop", fe_rate / LANES_RATE, fe_rate / loop_rate))
row(string.format("%d tiny tasks via pool:begin, %d in flight", N, WINDOW),
    string.format("%.0f k/s", begin_rate / 1e3), ">= 110 k/s",
    string.format("Lanes lane-per-task %.0f k/s", LANES_RATE / 1e3),
    string.format("%.1fx Lanes, %.3fx of the loop", begin_rate / LANES_RATE, begin_rate / loop_rate))
row("pool:begin -> h:wait round trip, warm (median)", string.format("%.1f us", median * 1e6),
    "<= 20 us", string.format("p99 %.1f us; a plain call %.0f ns", p99 * 1e6, call_ns),
    string.format("%.0fx a plain call", median * 1e9 / call_ns))
