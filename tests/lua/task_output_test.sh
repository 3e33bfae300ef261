#!/bin/sh
# task_output_test.sh LUA -- what tasks started from a Lua program write shows as it would
# under lua5.4: print on standard output, warnings and write_error on standard error, whole
# lines; nothing from a quiet pool or run; verbose and terminating errors not shown.
set -eu
# In sanitizer builds RS_LUA_PRELOAD names the runtime to preload for lua5.4 only.
preload=${RS_LUA_PRELOAD:-}
lua=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
LD_PRELOAD=$preload timeout 60 "$lua" -e '
  local rs = require "runspace"
  local pool = rs.pool{max = 2}
  print("program before")
  local h = pool:begin([[print("task", 1, nil) write_warning("careful") write_error("bad item")
                         write_verbose("hidden") return 7]])
  assert(h:wait(10) == 7)
  print("program after")
  -- many lines from two tasks at once stay whole
  local a = pool:begin([[for i = 1, 500 do print(("a"):rep(200)) end]])
  local b = pool:begin([[for i = 1, 500 do print(("b"):rep(200)) end]])
  a:wait(10) b:wait(10)
  local f = pool:begin([[error("boom")]])
  assert(not pcall(f.wait, f, 10))
  local quiet = rs.pool{max = 1, quiet = true}
  quiet:begin([[print("QUIET") write_warning("QUIET")]]):wait(10)
  for rec in rs.foreach{input = {1, 2}, ordered = true, script = [[print("item", _)]]} do end
  for rec in rs.foreach{input = {1}, quiet = true, script = [[print("QUIET")]]} do end
  local jobs = rs.jobs{max = 1}
  jobs:start([[print("job says hi") write_warning("job warns")]], {name = "j"})
  assert(jobs:wait("j", 10))
  local qjobs = rs.jobs{pool = pool, quiet = true}
  qjobs:start([[print("QUIET")]], {name = "q"})
  assert(qjobs:wait("q", 10))
  -- a for-each run or jobs manager on a quiet pool is quiet unless it says otherwise
  local qpool = rs.pool{max = 1, quiet = true}
  for rec in rs.foreach{input = {1}, pool = qpool, script = [[print("QUIET")]]} do end
  local pjobs = rs.jobs{pool = qpool}
  pjobs:start([[print("QUIET")]], {name = "p"})
  assert(pjobs:wait("p", 10))
  for rec in rs.foreach{input = {1}, pool = qpool, quiet = false,
                        script = [[print("loud on a quiet pool")]]} do end
  pjobs:close()
  assert(qpool:close(10))
  jobs:close() qjobs:close()
  -- a finalizer that runs as the runspace closes prints as at lua_close
  local fin = rs.pool{max = 1}
  fin:begin([[keep = setmetatable({}, {__gc = function() print("finalizer at close") end})]]):wait(10)
  assert(fin:close(10))
  assert(pool:close(10) and quiet:close(10))' >"$dir/out" 2>"$dir/err"
fail() { echo "$1"; echo "--- stdout"; head -c 2000 "$dir/out"; echo "--- stderr"; cat "$dir/err"; exit 1; }
# The task's line comes between the program's own two, as print in the task would.
sed -n 1,3p "$dir/out" | tr '\t' ' ' >"$dir/head"
printf 'program before\ntask 1 nil\nprogram after\n' | cmp -s - "$dir/head" || fail "print order"
test "$(grep -cx 'a\{200\}' "$dir/out")" = 500 || fail "lines of task a mixed or lost"
test "$(grep -cx 'b\{200\}' "$dir/out")" = 500 || fail "lines of task b mixed or lost"
grep -qx "$(printf 'item\t1')" "$dir/out" || fail "for-each item 1"
grep -qx "$(printf 'item\t2')" "$dir/out" || fail "for-each item 2"
grep -qx "job says hi" "$dir/out" || fail "job's print"
grep -qx "finalizer at close" "$dir/out" || fail "finalizer's print at close"
grep -qx "loud on a quiet pool" "$dir/out" || fail "quiet = false on a quiet pool"
test "$(wc -l <"$dir/out")" = 1008 || fail "stray lines on stdout"
printf 'WARNING: careful\nERROR: bad item\nWARNING: job warns\n' | cmp -s - "$dir/err" || fail "stderr"
if grep -q 'QUIET\|hidden\|boom' "$dir/out" "$dir/err"; then fail "quiet or hidden record shown"; fi
echo "task output shown as under lua5.4"
