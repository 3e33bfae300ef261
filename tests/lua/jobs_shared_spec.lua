-- The job manager and the shared store from Lua.
local rs = require "runspace"

describe("rs.jobs", function()
  it("starts named jobs, waits for them and reports their state and results", function()
    local jobs = rs.jobs{max = 2}
    local name = jobs:start("return params.n * 2", {name = "double", params = {n = 21}})
    assert.are.equal("double", name)
    local auto = jobs:start("write_error('careful') return 1")
    assert.matches("^Job_%x%x%x%x%x%x%x%x$", auto)
    assert.is_true(jobs:wait("double", 10))
    assert.is_true(jobs:wait_all(10))
    local info = jobs:get("double")
    assert.are.equal("completed", info.state)
    assert.are.same({42}, info.result)
    assert.is_true(info.duration >= 0 and info.finish >= info.start)
    assert.are.equal("completed_with_errors", jobs:get(auto).state)
    assert.are.equal(1, jobs:get(auto).errors)
    assert.is_nil(jobs:get("nobody"))
    local all = jobs:list()
    table.sort(all)
    assert.are.same({auto, "double"}, {all[1], all[2]})
    assert.has_error(function() jobs:start("return 1", {name = "double"}) end)
    assert.has_error(function() jobs:start("return +") end)
    jobs:close()
    assert.has_error(function() jobs:list() end, "the jobs manager is closed")
  end)

  it("refuses a script or name with a zero byte rather than cut it", function()
    local jobs = rs.jobs{max = 1, quiet = true}
    assert.has_error(function() jobs:start("return 1\0 error('cut')") end)
    assert.has_error(function() jobs:start("return 1", {name = "a\0b"}) end)
    assert.is_nil(jobs:get("a\0b"))
    assert.has_error(function() jobs:wait("a\0b") end)
    jobs:close()
  end)

  it("times out a wait, and removes (stops) a running job", function()
    local jobs = rs.jobs{max = 1}
    jobs:start("while true do end", {name = "spin"})
    local ok, why = jobs:wait("spin", 0.05)
    assert.is_nil(ok)
    assert.are.equal("timeout", why)
    assert.are.same({"spin"}, jobs:list("running"))
    jobs:remove("spin")
    assert.is_nil(jobs:get("spin"))
    assert.has_error(function() jobs:wait("spin", 1) end)
    jobs:start("sleep(30)", {name = "sleeper"})
    jobs:close() -- stops it
  end)

  it("runs on a given pool, which refuses to close under it", function()
    local pool = rs.pool{max = 2}
    local jobs = rs.jobs{pool = pool}
    jobs:start("return 5", {name = "five"})
    assert.is_true(jobs:wait("five", 10))
    assert.has_error(function() pool:close(1) end)
    jobs:close()
    assert.is_true(pool:close(10))
  end)
end)

describe("rs.shared", function()
  it("is one store for the program and the pool's runspaces", function()
    local store = rs.shared()
    local pool = rs.pool{max = 2, shared = store}
    store:set("config", {retries = 3, hosts = {"a", "b"}})
    local hs = {}
    for i = 1, 20 do hs[i] = pool:begin("shared.incr('hits') return shared.get('config').retries") end
    for i = 1, 20 do assert.are.equal(3, hs[i]:wait(10)) end
    assert.are.equal(20, store:get("hits"))
    assert.are.equal(25, store:incr("hits", 5))
    assert.are.same({"config", "hits"}, store:keys())
    local got = store:get("config")
    got.retries = 99 -- a copy
    assert.are.equal(3, store:get("config").retries)
    store:set("config", nil)
    assert.is_nil(store:get("config"))
    assert.has_error(function() store:incr("missing-number", 1.5) end)
    store:set("s", "text")
    assert.has_error(function() store:incr("s") end, "shared value 's' is not an integer")
    assert.has_error(function() store:set("f", print) end)
    -- keys are bytes: a zero byte does not cut them, here and in the runspaces
    store:set("k\0z", 1)
    assert.is_nil(store:get("k"))
    assert.are.equal(1, store:get("k\0z"))
    assert.are.equal(2, store:incr("k\0z"))
    assert.are.equal(2, pool:begin("return shared.get('k\\0z')"):wait(10))
    -- the pool's own store is the same object's store
    assert.are.equal(25, pool:shared():get("hits"))
    pool:close(10)
  end)

  it("gives each pool a store of its own by default", function()
    local a, b = rs.pool{max = 1}, rs.pool{max = 1}
    a:begin("shared.set('k', 'a')"):wait(10)
    assert.are.equal("a", a:shared():get("k"))
    assert.is_nil(b:shared():get("k"))
    a:close() b:close()
  end)
end)
