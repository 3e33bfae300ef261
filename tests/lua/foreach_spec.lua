-- rs.foreach as a Lua iterator: one record per input, tables and iterator functions as input,
-- options, closing by break and by error, time limits, summaries.
local rs = require "runspace"

local function collect(opts)
  local recs = {}
  for rec in rs.foreach(opts) do recs[rec.index] = rec end
  return recs
end

describe("rs.foreach", function()
  it("gives one record per item of a table", function()
    local input = {}
    for i = 1, 1000 do input[i] = i end
    local recs = collect{input = input, script = "return _ * _", throttle = 2}
    for i = 1, 1000 do
      local r = recs[i]
      assert.are.equal("ok", r.status)
      assert.are.equal(i, r.input)
      assert.are.equal(i * i, r.value)
      assert.are.same({i * i}, r.output)
      assert.is_true(r.attempts >= 1)
      assert.is_true(r.runspace > 0)
    end
  end)

  it("reads an iterator function as it goes, e.g. io.lines", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    for i = 1, 300 do f:write("host", i, "\n") end
    f:close()
    local n, seen = 0, {}
    for rec in rs.foreach{input = io.lines(path), script = "return (_:gsub('host', 'h'))",
                          ordered = true} do
      n = n + 1
      assert.are.equal(n, rec.index) -- ordered: input order
      assert.are.equal("h" .. n, rec.value)
      seen[rec.input] = true
    end
    os.remove(path)
    assert.are.equal(300, n)
  end)

  it("reports failures, timeouts and inputs that cannot be copied as records", function()
    local recs = collect{input = {1, 2, print, 4}, timeout = 0.2,
                         script = "if _ == 2 then error('two') elseif _ == 4 then while true do end end return _"}
    assert.are.equal("ok", recs[1].status)
    assert.are.equal("error", recs[2].status)
    assert.matches("two", recs[2].error)
    assert.are.equal("error", recs[3].status)
    assert.matches("cannot pass a function", recs[3].error)
    assert.are.equal("timeout", recs[4].status)
  end)

  it("passes args and params to every item, and runs on a given pool", function()
    local pool = rs.pool{max = 2}
    local recs = collect{input = {1, 2, 3}, pool = pool, args = {10},
                         params = {k = "v"}, script = "local item, a = ... return item + a, params.k"}
    for i = 1, 3 do assert.are.same({i + 10, "v"}, recs[i].output) end
    assert.is_true(pool:close(10))
  end)

  it("stops the run when the loop is left with break or an error", function()
    local pool = rs.pool{max = 2}
    local input = {}
    for i = 1, 100 do input[i] = i end
    local script = "if _ > 1 then sleep(30) end return _"
    local t0 = os.time()
    for rec in rs.foreach{input = input, pool = pool, script = script} do
      assert.are.equal(1, rec.input)
      break
    end
    local ok, err = pcall(function()
      for rec in rs.foreach{input = input, pool = pool, script = script} do error("body failed") end
    end)
    assert.is_false(ok)
    assert.matches("body failed", err)
    assert.is_true(pool:close(10)) -- nothing of either run is left on the pool
    assert.is_true(os.time() - t0 < 20)
  end)

  it("ends within its time limit, cancelling what did not finish", function()
    local input = {}
    for i = 1, 50 do input[i] = i end
    local run = rs.foreach{input = input, throttle = 2, time_limit = 0.3,
                           script = "if _ == 1 then return 1 end sleep(30)"}
    local t0 = os.time()
    local statuses = {}
    for rec in run do statuses[rec.status] = (statuses[rec.status] or 0) + 1 end
    assert.is_true(os.time() - t0 < 15)
    local s = run:summary()
    assert.are.equal(s.total, (statuses.ok or 0) + (statuses.cancelled or 0))
    -- every input has its record, read by then or not
    assert.are.equal(50, s.total)
    assert.is_true((statuses.cancelled or 0) >= 1)
    assert.are.equal(s.cancelled, statuses.cancelled)
    run:close()
    assert.has_error(function() run:summary() end, "the for-each run is closed")
  end)

  it("gives every input of a table its record when the time limit or a stop ends it", function()
    local input = {}
    for i = 1, 20000 do input[i] = i end
    local run = rs.foreach{input = input, time_limit = 0, script = "return _"}
    local seen, n = {}, 0
    for rec in run do
      assert.is_nil(seen[rec.index])
      seen[rec.index] = true
      n = n + 1
      if rec.status == "cancelled" then
        assert.are.equal(rec.index, rec.input)
        -- the engine's words for items it had taken, the module's for the others
        assert.is_truthy(rec.error:match("time limit") or rec.error:match("stopped"))
      end
    end
    assert.are.equal(20000, n)
    assert.are.equal(20000, run:summary().total)
    local stopped = rs.foreach{input = {1, 2, 3, 4, 5, 6}, throttle = 1, script = "sleep(0.2)"}
    local k, cancelled = 0, 0
    for rec in stopped do
      k = k + 1
      if k == 1 then stopped:stop() end
      if rec.status == "cancelled" then cancelled = cancelled + 1 end
    end
    assert.are.equal(6, k)
    assert.are.equal(6, stopped:summary().total)
    assert.is_true(cancelled >= 4)
  end)

  it("takes math.huge as no time limit, and waits without spinning", function()
    local c0, t0 = os.clock(), rs.monotonic()
    local recs = collect{input = {1, 2}, throttle = 2, time_limit = math.huge,
                         script = "sleep(0.4) return _"}
    assert.are.equal(2, #recs)
    assert.is_true(rs.monotonic() - t0 >= 0.4)
    -- the loop sleeps while the items sleep: far less CPU than the wall time
    assert.is_true(os.clock() - c0 < 0.25)
  end)

  it("runs a script holding zero bytes in its literals", function()
    local recs = collect{input = {1}, script = "return #'a\0b' + _"}
    assert.are.equal(4, recs[1].value)
  end)

  it("summarises the run once the loop ended", function()
    local run = rs.foreach{input = {1, 2, 3}, script = "if _ == 2 then error('x') end return _"}
    assert.is_nil(run:summary())
    local n = 0
    for _ in run do n = n + 1 end
    assert.are.equal(3, n)
    local s = run:summary()
    assert.are.same({3, 2, 1, 0, 0}, {s.total, s.succeeded, s.failed, s.timed_out, s.cancelled})
    assert.is_nil(run()) -- after the end, the iterator stays ended
  end)

  it("raises the input function's error out of the loop", function()
    local i = 0
    local function input()
      i = i + 1
      if i == 5 then error("input broke") end
      return i
    end
    local ok, err = pcall(function()
      for _ in rs.foreach{input = input, script = "return _"} do end
    end)
    assert.is_false(ok)
    assert.matches("input broke", err)
  end)

  it("survives misuse: bad options, yields and re-entrance from the input", function()
    assert.has_error(function() rs.foreach{script = "return 1"} end)
    assert.has_error(function() rs.foreach{input = {}, script = "return +"} end)
    assert.has_error(function() rs.foreach{input = {}} end, "give one of the options 'script' and 'command'")
    assert.has_error(function() rs.foreach{input = {}, script = "return 1", timeout = -1} end)
    assert.has_error(function() rs.foreach{input = {}, script = "return 1", pool = {}} end)
    assert.has_error(function() rs.foreach(nil) end)
    -- an input that yields (from inside a coroutine) is an error, not a crash
    local co = coroutine.wrap(function()
      local ok, err = pcall(function()
        for _ in rs.foreach{input = function() coroutine.yield() end, script = "return 1"} do end
      end)
      return ok, err
    end)
    local ok, err = co()
    assert.is_false(ok)
    assert.matches("yield", err)
    -- the input calling its own run
    local run
    run = rs.foreach{input = function() return run() end, script = "return _"}
    local ok2, err2 = pcall(function() for _ in run do end end)
    assert.is_false(ok2)
    assert.matches("already being iterated", err2)
    run:close()
    -- a run nobody iterates is stopped when collected
    do rs.foreach{input = {1, 2, 3}, script = "sleep(30)"} end
    collectgarbage() collectgarbage()
  end)

  it("keeps a journal and resumes from it", function()
    local path = os.tmpname()
    os.remove(path)
    local input = {}
    for i = 1, 20 do input[i] = i end
    local run = rs.foreach{input = input, journal = path, script = "if _ % 5 == 0 then error('five') end return _"}
    local n = 0
    for _ in run do n = n + 1 end
    assert.are.equal(20, n)
    local lines = 0
    for _ in io.lines(path) do lines = lines + 1 end
    assert.are.equal(21, lines) -- the header and one line per record
    -- resuming the failed: only the four failures run again
    local again = {}
    local run2 = rs.foreach{input = input, journal = path, resume = "failed",
                            script = "if _ % 5 == 0 then error('five') end return _"}
    for rec in run2 do again[#again + 1] = rec.input end
    table.sort(again)
    assert.are.same({5, 10, 15, 20}, again)
    assert.are.equal(16, run2:summary().skipped)
    -- a new journal over one that holds records is refused with the library's message
    assert.has_error(function()
      for _ in rs.foreach{input = input, journal = path, script = "return _"} do end
    end)
    assert.has_error(function() rs.foreach{input = input, journal = path, resume = "some", script = "return 1"} end)
    os.remove(path)
  end)

  it("empties an empty input", function()
    local n = 0
    for _ in rs.foreach{input = {}, script = "return 1"} do n = n + 1 end
    assert.are.equal(0, n)
  end)
end)
