-- What a Lua Lanes user tries first, done with runspaces: a fan-out of tasks, a producer and
-- consumers that meet in the shared store (where Lanes would use a linda), and a runaway task
-- that is cancelled.
local rs = require "runspace"

describe("coming from Lanes", function()
  it("fans out tasks and gathers their results", function()
    local pool = rs.pool{max = 4}
    local fib = [[
      local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
      return fib(...)
    ]]
    local handles = {}
    for n = 1, 20 do handles[n] = pool:begin(fib, n) end
    local expect, a, b = {}, 0, 1
    for n = 1, 20 do a, b = b, a + b expect[n] = a end
    for n = 1, 20 do assert.are.equal(expect[n], handles[n]:wait(30)) end
    assert.is_true(pool:close(10))
  end)

  it("passes work from a producer to consumers through shared", function()
    local pool = rs.pool{max = 3}
    local N = 200
    local producer = pool:begin([[
      local n = ...
      for i = 1, n do
        shared.set("item:" .. i, i * i)
        if i % 50 == 0 then sleep(0.001) end -- let the consumers catch up now and then
      end
      shared.set("done", true)
      return n
    ]], N)
    local consumer = [[
      local n, deadline = ..., time.monotonic() + 20
      local sum, taken = 0, 0
      while true do
        local k = shared.incr("next") -- claim the next item
        if k > n then break end
        local v = shared.get("item:" .. k)
        while v == nil do -- not produced yet
          if time.monotonic() > deadline then error("item " .. k .. " never came") end
          sleep(0.001)
          v = shared.get("item:" .. k)
        end
        sum, taken = sum + v, taken + 1
      end
      return sum, taken
    ]]
    local c1, c2 = pool:begin(consumer, N), pool:begin(consumer, N)
    assert.are.equal(N, producer:wait(30))
    local s1, t1 = c1:wait(30)
    local s2, t2 = c2:wait(30)
    local want = 0
    for i = 1, N do want = want + i * i end
    assert.are.equal(want, s1 + s2)
    assert.are.equal(N, t1 + t2)
    assert.is_true(pool:shared():get("done"))
    assert.is_true(pool:close(10))
  end)

  it("cancels a runaway task, in a tight loop or asleep", function()
    local pool = rs.pool{max = 2}
    local spin = pool:begin("local x = 0 while true do x = x + 1 end")
    local nap = pool:begin("sleep(3600)")
    assert.is_nil(spin:wait(0.1))
    local t0 = os.time()
    assert.is_true(spin:stop(5))
    assert.is_true(nap:stop(5))
    assert.is_true(os.time() - t0 <= 6)
    assert.are.equal("stopped", spin:state())
    assert.are.equal("stopped", nap:state())
    local ok, err = pcall(spin.wait, spin)
    assert.is_false(ok)
    assert.is_string(err)
    -- the pool goes on
    assert.are.equal(3, pool:begin("return 1 + 2"):wait(10))
    assert.is_true(pool:close(10))
  end)
end)
