-- rs.scan as a Lua iterator, on loopback only.
local rs = require "runspace"

describe("rs.scan", function()
  it("reports one result per probe of 127.0.0.1", function()
    local run = rs.scan{targets = {"127.0.0.1"}, ports = {1, "2-4"}, timeout = 0.5}
    local seen = {}
    for r in run do
      assert.are.equal("127.0.0.1", r.address)
      assert.is_truthy(({open = 1, closed = 1, filtered = 1})[r.state])
      seen[r.port] = r.state
    end
    assert.are.same({1, 2, 3, 4}, (function() local k = {} for p in pairs(seen) do k[#k + 1] = p end table.sort(k) return k end)())
    local s = run:summary()
    assert.are.equal(4, s.probes)
    assert.are.equal(1, s.hosts)
  end)

  it("refuses bad targets and ports with the library's message", function()
    assert.has_error(function() rs.scan{targets = "10.0.0.0/33", ports = "22"} end)
    assert.has_error(function() rs.scan{targets = "127.0.0.1", ports = "0"} end)
    assert.has_error(function() rs.scan{targets = 5} end)
    assert.has_error(function() rs.scan{ports = "22"} end)
  end)

  it("reads its targets from a file alone", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("# loopback\n127.0.0.1\n")
    f:close()
    local n = 0
    for r in rs.scan{targets_file = path, ports = "1-3", timeout = 0.5} do
      assert.are.equal("127.0.0.1", r.address)
      n = n + 1
    end
    os.remove(path)
    assert.are.equal(3, n)
    assert.has_error(function() rs.scan{ports = "1"} end,
                     "give the option 'targets' or 'targets_file' (or both)")
  end)

  it("takes math.huge as no time limit", function()
    local n = 0
    for _ in rs.scan{targets = "127.0.0.1", ports = "1-50", timeout = 0.5, time_limit = math.huge} do
      n = n + 1
    end
    assert.are.equal(50, n)
    assert.has_error(function() rs.scan{targets = "127.0.0.1", ports = "1", time_limit = 0/0} end,
                     "option 'time_limit' must be a number of seconds (got nan)")
  end)

  it("stops when the loop is left", function()
    local n = 0
    for _ in rs.scan{targets = "127.0.0.1", ports = "1-2000", timeout = 0.5} do
      n = n + 1
      if n == 10 then break end
    end
    assert.are.equal(10, n)
  end)
end)
