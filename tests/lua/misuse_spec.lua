-- Misuse never crashes the host: wrong types and selves, closed objects, coroutines, handles
-- and runs collected at any moment. (A state closed with work still running:
-- close_state.lua, run on its own since it ends the interpreter.)
local rs = require "runspace"

describe("misuse", function()
  it("raises clear errors for wrong types and wrong selves", function()
    local pool = rs.pool{max = 1}
    assert.has_error(function() pool:begin() end)
    assert.has_error(function() pool:begin({}) end)
    assert.has_error(function() pool.begin(42, "return 1") end, "expected a pool (rs.pool{...}), got number")
    local h = pool:begin("return 1")
    assert.has_error(function() h.wait(pool) end)
    assert.has_error(function() pool.close(h) end)
    assert.has_error(function() h:wait(0 / 0) end)
    assert.has_error(function() h:wait("soon") end)
    assert.are.equal(1, h:wait(10))
    assert.has_error(function() rs.pool{max = "four"} end,
                     "option 'max' must be an integer from 0 to 65536 (got string)")
    -- numbers out of range are refused, not cut to 32 bits
    assert.has_error(function() rs.pool{max = 2^32} end,
                     "option 'max' must be an integer from 0 to 65536 (got 4294967296.0)")
    assert.has_error(function() rs.pool{max = 70000} end,
                     "option 'max' must be an integer from 0 to 65536 (got 70000)")
    assert.has_error(function() rs.pool{min = 1.5} end,
                     "option 'min' must be an integer from 0 to 65536 (got 1.5)")
    assert.has_error(function() rs.jobs{max = -1} end,
                     "option 'max' must be an integer from 0 to 65536 (got -1)")
    assert.has_error(function() rs.pool{idle_timeout = 0/0} end,
                     "option 'idle_timeout' must be a number of seconds (got nan)")
    assert.has_error(function() rs.foreach{input = {}, script = "", time_limit = 0/0} end)
    assert.has_error(function() rs.foreach{input = {}, script = "", throttle = 2^40} end)
    assert.has_error(function() rs.foreach{input = {}, script = "", journal = "a\0b"} end,
                     "option 'journal' holds a zero byte")
    assert.has_error(function() rs.pool{variables = {["a\0b"] = 1, a = 2}} end,
                     "option 'variables': a name or source holds a zero byte")
    assert.has_error(function() rs.pool{functions = {f = "return 1\0"}} end,
                     "option 'functions': a name or source holds a zero byte")
    assert.has_error(function() rs.pool{modules = {"x\0y"}} end,
                     "option 'modules': a name or source holds a zero byte")
    assert.has_error(function() rs.scan{targets = "127.0.0.1\0x", ports = "1"} end,
                     "option 'targets': a target holds a zero byte")
    assert.has_error(function() rs.pool{max = -1} end)
    assert.has_error(function() rs.pool(5) end)
    assert.has_error(function() rs.pool{shared = {}} end, "option 'shared' must be a store of rs.shared()")
    assert.has_error(function() rs.pool{variables = {["not a name"] = 1}} end)
    assert.has_error(function() rs.pool{variables = {x = print}} end)
    assert.has_error(function() rs.jobs{pool = "p"} end)
    assert.has_error(function() rs.shared().get(pool, "k") end)
    assert.has_error(function() rs.shared():get() end)
    pool:close()
    assert.has_error(function() rs.foreach{input = {1}, script = "return 1", pool = pool} end, "the pool is closed")
  end)

  it("waits and stops from inside coroutines", function()
    local pool = rs.pool{max = 2}
    local co = coroutine.wrap(function(x)
      local h = pool:begin("return ... + 1", x)
      local y = coroutine.yield(h:wait(10))
      local spin = pool:begin("while true do end")
      assert(spin:stop(10))
      return y, spin:state()
    end)
    assert.are.equal(2, co(1))
    local y, st = co("again")
    assert.are.same({"again", "stopped"}, {y, st})
    -- a for-each loop suspended in a coroutine and abandoned is stopped when collected
    local gen = coroutine.wrap(function()
      for rec in rs.foreach{input = {1, 2, 3, 4}, pool = pool, script = "if _ > 1 then sleep(30) end return _"} do
        coroutine.yield(rec.value)
      end
    end)
    assert.are.equal(1, gen())
    gen = nil
    collectgarbage() collectgarbage()
    assert.is_true(pool:close(10))
  end)
end)

describe("the module's objects", function()
  it("keep their metatables to themselves", function()
    local pool = rs.pool{max = 1}
    local h = pool:begin("return 1")
    for _, obj in ipairs{pool, h, rs.shared(), rs.jobs{max = 1}} do
      assert.are.equal("runspace", getmetatable(obj))
      assert.has_error(function() setmetatable(obj, {}) end)
    end
    assert.are.equal(1, h:wait(10))
    pool:close()
  end)
end)
