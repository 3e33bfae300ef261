#!/bin/sh
# install_test.sh BUILD_DIR LUA -- installs the build into a fresh temporary prefix, as
# `make install PREFIX=...` does, and checks that lua5.4 finds the module there through the
# directory on its own package.cpath (PREFIX/lib/lua/5.4/?.so) and can use it.
set -eu
# In sanitizer builds RS_LUA_PRELOAD names the runtime to preload for lua5.4 (loading the
# instrumented module) only, not for cmake or the shell's tools.
preload=${RS_LUA_PRELOAD:-}
# lua5.4's own search path, not the one the other tests point at the build.
unset LUA_CPATH LUA_CPATH_5_4
build=$1
lua=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/lib/lua/5.4/runspace.so"
# package.cpath of lua5.4 names PREFIX/lib/lua/5.4 for /usr/local and /usr; point the same
# template at the temporary prefix.
template=$("$lua" -e 'for p in package.cpath:gmatch("[^;]+") do if p:find("/lib/lua/5.4/?.so", 1, true) then print(p) break end end')
case $template in
*/lib/lua/5.4/\?.so) ;;
*) echo "lua5.4's package.cpath has no PREFIX/lib/lua/5.4/?.so: $template"; exit 1 ;;
esac
LD_PRELOAD=$preload LUA_CPATH_5_4="$prefix/lib/lua/5.4/?.so" "$lua" -e '
  local rs = require "runspace"
  local pool = rs.pool{max = 1}
  assert(pool:begin("return ... * 2", 21):wait(10) == 42)
  assert(pool:close(10))
  print("installed module works: runspace " .. rs.version)'
