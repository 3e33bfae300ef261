local rs = require "runspace"
describe("smoke", function()
  it("begins and waits", function()
    local pool = rs.pool{max = 2}
    local h = pool:begin("return ... * 2", 21)
    assert.are.equal(42, h:wait())
    pool:close()
  end)
end)
