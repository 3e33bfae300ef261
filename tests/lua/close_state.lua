-- close_state.lua -- run by CTest as `lua5.4 close_state.lua` (not a busted spec: it ends the
-- interpreter). Closes the Lua state while a pool, a handle, a for-each run, a jobs manager
-- and a scan are all still working: every finalizer must stop its work and free it, without
-- a crash, a hang or (in the AddressSanitizer build) a leak. Exits 0 only if the state closed.
local rs = require "runspace"
local pool = rs.pool{max = 2}
local h = pool:begin("while true do end")
local run = rs.foreach{input = {1, 2, 3}, pool = pool, script = "sleep(30)"}
assert(run == run) -- started: its runner thread is reading the input
local jobs = rs.jobs{max = 1}
jobs:start("while true do end", {name = "spin"})
local scan = rs.scan{targets = "127.0.0.1", ports = "1-200", timeout = 0.5}
assert(scan() ~= nil) -- results are coming
local store = rs.shared()
store:set("k", {1, 2, 3})
assert(h:wait(0.01) == nil)
print("closing the state with work running")
os.exit(0, true) -- true: lua_close, so every finalizer runs
