-- Pools and handles: pool:begin/wait, values by copy both ways, errors, timeouts, stop, close.
local rs = require "runspace"

describe("rs.pool", function()
  local pool
  before_each(function() pool = rs.pool{max = 2} end)
  after_each(function() assert.is_true(pool:close(10)) end)

  it("runs a script with arguments as ... and returns its values", function()
    local h = pool:begin("return ... * 2", 21)
    assert.are.equal(42, h:wait(10))
    assert.are.equal("completed", h:state())
    assert.is_true(h:done())
    assert.is_nil(h:error())
    -- a second wait gives the same values again
    assert.are.equal(42, h:wait(10))
    local a, b, c = pool:begin("return ...", "x", 2.5, true):wait(10)
    assert.are.same({"x", 2.5, true}, {a, b, c})
    assert.are.equal(0, select("#", pool:begin("return"):wait(10)))
  end)

  it("copies values both ways", function()
    local t = {1, 2, {name = "n", list = {"a", "b"}}, "with\0nul"}
    local h = pool:begin("local t = ... t[1] = 99 return t, math.type(t[2]), math.type(2.0)", t)
    t[2] = "changed after begin"
    local back, it, ft = h:wait(10)
    assert.are.equal(1, t[1]) -- the runspace changed its own copy
    assert.are.same({99, 2, {name = "n", list = {"a", "b"}}, "with\0nul"}, back)
    assert.are.equal("integer", it)
    assert.are.equal("float", ft)
    assert.are_not.equal(t, back)
    -- maps have string keys (the value model): a mixed table's numeric keys become text
    local m = pool:begin("local m = ... return m['1'], m[1], m.k", {10, k = "v"}):wait(10)
    assert.are.equal(10, m)
    assert.are.same({10, nil, "v"}, {pool:begin("local m = ... return m['1'], m[1], m.k", {10, k = "v"}):wait(10)})
    -- null inside tables is rs.null; at the top it is nil
    local arr, top = pool:begin("return {1, json.null, 3}, nil"):wait(10)
    assert.are.equal(rs.null, arr[2])
    assert.is_nil(top)
    assert.are.equal(3, #arr)
  end)

  it("refuses values that cannot be copied, saying where", function()
    assert.has_error(function() pool:begin("return ...", {1, {f = print}}) end,
      "argument 1[2].f: cannot pass a function by copy")
    local cyc = {} cyc.self = cyc
    local ok, err = pcall(pool.begin, pool, "return ...", cyc)
    assert.is_false(ok)
    assert.matches("cycle", err)
    assert.has_error(function() pool:begin("return ...", coroutine.create(print)) end)
    -- the pool is still usable
    assert.are.equal(1, pool:begin("return 1"):wait(10))
  end)

  it("passes a function the script returns as its text, with a warning", function()
    local q = rs.pool{max = 1, quiet = true, records = true}
    local h = q:begin("local M = {f = print} return 1, M")
    local one, m = h:wait(10)
    assert.are.equal(1, one)
    assert.matches("^function: 0x%x+$", m.f)
    local w = h:records("warning")
    assert.are.equal(1, #w)
    assert.matches('output%[2%]%.f: a function cannot cross between runspaces; it is passed as '
                   .. 'the text "function: 0x', w[1].message)
    assert.is_true(q:close(10))
  end)

  it("keeps what the script wrote besides its values for h:records()", function()
    local q = rs.pool{max = 1, quiet = true, records = true}
    local h = q:begin([[print("a", 1) write_warning("w") write_verbose("v")
                        write_progress("copying", "half", 50) error("boom")]])
    assert.has_error(function() h:wait(10) end)
    local recs = h:records()
    local kinds = {}
    for i, r in ipairs(recs) do kinds[i] = r.stream end
    assert.are.same({"information", "warning", "verbose", "progress", "error"}, kinds)
    assert.are.equal("a\t1", recs[1].message)
    assert.are.equal("script", recs[1].source)
    assert.are.equal(1, recs[1].line)
    assert.are.equal(2, recs[4].line)
    assert.are.equal("copying", recs[4].activity)
    assert.are.equal(50, recs[4].percent)
    assert.matches("boom", recs[5].message)
    assert.is_string(recs[5].traceback)
    for i = 2, #recs do assert.is_true(recs[i].time >= recs[i - 1].time) end
    assert.are.same({recs[2]}, h:records("warning"))
    assert.are.same({}, h:records("debug"))
    assert.has_error(function() h:records("nonsense") end)
    -- none at all: an empty list
    local one = q:begin("return 1")
    assert.are.equal(1, one:wait(10))
    assert.are.same({}, one:records())
    -- while it runs: nil, "running"
    local r = q:begin("sleep(5)")
    local none, why = r:records()
    assert.is_nil(none)
    assert.are.equal("running", why)
    assert.is_true(r:stop(10))
    assert.is_true(q:close(10))
  end)

  it("keeps no records unless the pool is made with records = true", function()
    local q = rs.pool{max = 1, quiet = true, memory = 16 * 1024 * 1024}
    -- 300,000 lines in a 16 MiB runspace: kept, they would not fit its memory limit
    local h = q:begin([[for i = 1, 300000 do print("0123456789") write_verbose("v") end
                        return "done"]])
    assert.are.equal("done", h:wait(60))
    local ok, err = pcall(h.records, h)
    assert.is_false(ok)
    assert.matches("this pool does not keep records; create it with rs.pool{records = true}",
                   err, 1, true)
    -- the terminating error still reaches h:wait and h:error
    local f = q:begin([[print("x") error("boom")]])
    local ok2, werr = pcall(f.wait, f, 10)
    assert.is_false(ok2)
    assert.matches("script:1: boom", werr, 1, true)
    assert.matches("script:1: boom", f:error(), 1, true)
    assert.is_true(q:close(10))
    -- the same task on a pool that keeps them runs out of the memory limit
    local k = rs.pool{max = 1, quiet = true, records = true, memory = 16 * 1024 * 1024}
    local kh = k:begin([[for i = 1, 300000 do print("0123456789") end return "done"]])
    local ok3, kerr = pcall(kh.wait, kh, 60)
    assert.is_false(ok3)
    assert.matches("do not fit in the runspace memory limit", kerr, 1, true)
    assert.is_true(k:close(10))
  end)

  it("keeps numeric keys apart and refuses keys that would become one", function()
    local v = pool:begin("return ...", {[0.1 + 0.2] = 1, [0.3] = 2, [1e15 + 0.5] = 3}):wait(10)
    assert.are.equal(1, v["0.30000000000000004"])
    assert.are.equal(2, v["0.3"])
    assert.are.equal(3, v["1000000000000000.5"])
    assert.has_error(function() pool:begin("return ...", {[1] = "a", ["1"] = "b", x = 1}) end,
      'argument 1: two keys of this table become the same key "1" (a number and its text)')
    -- the same rule for a script's outputs
    local h = pool:begin("return {[2] = 'a', ['2'] = 'b'}")
    local ok, err = pcall(h.wait, h, 10)
    assert.is_false(ok)
    assert.matches('output%[1%]: two keys of this table become the same key "2"', err)
  end)

  it("refuses a copy far larger than the value, as shared references multiply", function()
    local t = {}
    for _ = 1, 40 do t = {t, t} end -- 2^40 values as a copy
    local ok, err = pcall(pool.begin, pool, "return 1", t)
    assert.is_false(ok)
    assert.matches("the copy would be more than 16 times the value's own", err)
    -- the same for what a task returns, though the pool has no memory limit
    local h = pool:begin("local x = {1} for i = 1, 40 do x = {x, x} end return x")
    local ok2, err2 = pcall(h.wait, h, 10)
    assert.is_false(ok2)
    assert.matches("the copy would be more than 16 times the value's own", err2)
    -- and for a long string referenced many times
    local s, many = ("x"):rep(1 << 20), {}
    for i = 1, 2000 do many[i] = s end
    assert.has_error(function() pool:begin("return 1", many) end)
    -- a value referenced twice is copied twice, as before
    local big = {}
    for i = 1, 100000 do big[i] = i end
    assert.are.equal(200000, pool:begin("local t = ... return #t[1] + #t[2]", {big, big}):wait(10))
  end)

  it("refuses a handle that a finalizer reaches after it was collected", function()
    local result
    do
      local h
      local _ = setmetatable({}, {__gc = function() result = {pcall(h.wait, h, 10)} end})
      h = pool:begin("return 7")
      assert.are.equal(7, h:wait(10))
    end
    collectgarbage() collectgarbage()
    assert.is_false(result[1])
    assert.matches("the handle was collected", result[2])
  end)

  it("raises the script's error with the library's message", function()
    local h = pool:begin("error('boom')")
    assert.has_error(function() h:wait(10) end)
    local ok, err = pcall(h.wait, h, 10)
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.are.equal("failed", h:state())
    assert.matches("boom", h:error())
    local ok2, err2 = pcall(pool.begin, pool, "return +")
    assert.is_false(ok2)
    assert.matches("script:1:", err2)
  end)

  it("shows an error object that is a number as its text, as lua5.4 does", function()
    local h = pool:begin("error(42)")
    local ok, err = pcall(h.wait, h, 10)
    assert.is_false(ok)
    assert.are.equal("42", err)
    assert.are.equal("42", h:error())
  end)

  it("times out a wait and stops a runaway script", function()
    local h = pool:begin("while true do end")
    local t0 = os.clock()
    local v, why = h:wait(0.05)
    assert.is_nil(v)
    assert.are.equal("timeout", why)
    assert.are.equal("running", h:state())
    assert.is_true(h:stop(10))
    assert.are.equal("stopped", h:state())
    assert.has_error(function() h:wait(10) end)
    assert.is_true(os.clock() - t0 < 10)
    -- the runspace it ran on is available again
    assert.are.equal(7, pool:begin("return 7"):wait(10))
  end)

  it("gives a descriptor to poll until the handle is waited for", function()
    local h = pool:begin("sleep(0.05) return 'late'")
    local fd = h:fd()
    assert.are.equal("integer", math.type(fd))
    assert.is_true(fd >= 0)
    assert.are.equal("late", h:wait(10))
    assert.has_error(function() h:fd() end, "the invocation has been waited for")
  end)

  it("reuses invocations across many begins", function()
    local hs = {}
    for i = 1, 500 do hs[i] = pool:begin("return ... + 1", i) end
    for i = 1, 500 do assert.are.equal(i + 1, hs[i]:wait(30)) end
  end)

  it("reports and changes its limits", function()
    assert.are.equal(2, pool:max())
    assert.are.equal(3, pool:max(3))
    assert.are.equal(1, pool:min())
    assert.is_true(pool:available() <= 3)
    local rows = pool:runspaces()
    assert.is_true(#rows >= 1)
    assert.are.equal("number", type(rows[1].id))
    assert.are.equal("Opened", rows[1].state)
    assert.has_error(function() pool:max(0) end)
    assert.matches("runspace.pool", tostring(pool))
  end)

  it("builds runspaces from session options", function()
    local p = rs.pool{max = 1, profile = "restricted", variables = {Config = {retries = 3}},
                      functions = {twice = "local x = ... return 2 * x"}}
    assert.are.same({3, 8, "nil"}, {p:begin("return Config.retries, twice(4), type(io)"):wait(10)})
    p:close()
    -- a module file, bound to the global of its base name; limits
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write("return {answer = 42}")
    f:close()
    local name = path:match("([^/]+)%.lua$"):gsub("[.-]", "_")
    local q = rs.pool{max = 1, modules = {path}, instructions = 100000}
    assert.are.equal(42, q:begin("return " .. name .. ".answer"):wait(10))
    local ok, err = pcall(function() return q:begin("while true do end"):wait(10) end)
    assert.is_false(ok)
    assert.matches("instruction budget of 100000 exceeded", err)
    q:close(10)
    local m = rs.pool{max = 1, memory = 4 * 1024 * 1024}
    ok, err = pcall(function() return m:begin("local t = {} for i = 1, 1e7 do t[i] = i end"):wait(10) end)
    assert.is_false(ok)
    assert.matches("memory", err)
    m:close(10)
    os.remove(path)
    assert.has_error(function() rs.pool{profile = "open"} end,
      'option \'profile\' must be "default" or "restricted" (got "open")')
    assert.has_error(function() rs.pool{functions = {f = "return +"}} end)
    assert.has_error(function() rs.pool{min = 3, max = 2} end)
  end)
end)

describe("closing and collecting", function()
  it("closes, stopping what its handles run, and refuses use after", function()
    local pool = rs.pool{max = 2}
    local h = pool:begin("while true do end")
    assert.is_true(pool:close(10))
    assert.is_true(pool:close()) -- a second close is fine
    assert.are.equal("stopped", h:state())
    assert.has_error(function() h:wait(1) end)
    assert.has_error(function() pool:begin("return 1") end, "the pool is closed")
    assert.has_error(function() pool:max() end, "the pool is closed")
  end)

  it("stops the invocation of a handle that is collected while it runs", function()
    local pool = rs.pool{max = 1}
    do pool:begin("while true do end") end
    collectgarbage() collectgarbage()
    -- the only runspace is free again once the orphan stopped
    assert.are.equal(5, pool:begin("return 5"):wait(10))
    assert.is_true(pool:close(10))
  end)

  it("stops a to-be-closed handle at the end of its scope", function()
    local pool = rs.pool{max = 1}
    do
      local h <close> = pool:begin("sleep(60)")
      assert.are.equal("running", h:state())
    end
    assert.are.equal(6, pool:begin("return 6"):wait(10))
    pool:close(10)
  end)

  it("survives collection of a pool with running handles", function()
    local h
    do
      local pool = rs.pool{max = 1}
      h = pool:begin("while true do end")
    end
    collectgarbage()
    assert.is_nil(h:wait(0.01)) -- the handle keeps its pool
    assert.is_true(h:stop(10))
    h = nil
    collectgarbage() collectgarbage()
  end)
end)
