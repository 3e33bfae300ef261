#!/bin/sh
# run.sh -- runs one libFuzzer harness with the flags that suit it.
#
#   run.sh check BINARY NAME WORKDIR   (CTest's fuzz.NAME, so `make test`) replays the seeds in
#       corpus/NAME, then runs a fixed number of further inputs from a fixed random seed. New
#       inputs go to a scratch directory emptied first; the checked-in seeds are only read.
#   run.sh fuzz BINARY NAME WORKDIR    (`make fuzz`) fuzzes for $FUZZ_SECONDS seconds (60 by
#       default). The corpus grows in WORKDIR/corpus/NAME, seeded from corpus/NAME. Extra
#       libFuzzer flags come from $FUZZ_FLAGS; "-fork=1 -ignore_crashes=1 -ignore_timeouts=1
#       -ignore_ooms=1" keeps fuzzing after a finding.
#
# Either way a crash, a hang, a leak or an out-of-memory input is saved under
# WORKDIR/findings/NAME/ and the harness exits non-zero.
set -eu
[ $# -eq 4 ] || { echo "usage: run.sh check|fuzz BINARY NAME WORKDIR" >&2; exit 2; }
mode=$1 bin=$2 name=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus/$name

# Per harness: its flags, and the number of inputs a check runs (seeds included). The timeouts
# are far above what an input needs, so that only a real hang trips them; the script harness
# gives every script 0.5 s and so must finish each input well within 10 s.
case $name in
json) flags="-dict=$here/dict/json.dict -max_len=4096 -timeout=10" runs=100000 ;;
scan_spec) flags="-dict=$here/dict/scan.dict -max_len=512 -timeout=10" runs=60000 ;;
targets_file) flags="-dict=$here/dict/scan.dict -max_len=4096 -timeout=10" runs=40000 ;;
cli_values) flags="-dict=$here/dict/cli.dict -max_len=256 -timeout=10" runs=100000 ;;
script) flags="-dict=$here/dict/lua.dict -max_len=1024 -timeout=10 -rss_limit_mb=2048" runs=3000 ;;
*) echo "run.sh: unknown harness '$name'" >&2; exit 2 ;;
esac

: "${ASAN_OPTIONS:=detect_leaks=1:strict_string_checks=1}"
: "${UBSAN_OPTIONS:=halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS UBSAN_OPTIONS

findings=$work/findings/$name
mkdir -p "$findings"
case $mode in
check)
  scratch=$work/check/$name
  rm -rf "$scratch"
  mkdir -p "$scratch"
  # shellcheck disable=SC2086
  exec "$bin" $flags -runs="$runs" -seed=1 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$scratch" "$seeds"
  ;;
fuzz)
  corpus=$work/corpus/$name
  mkdir -p "$corpus"
  # shellcheck disable=SC2086
  exec "$bin" $flags ${FUZZ_FLAGS:-} -max_total_time="${FUZZ_SECONDS:-60}" -print_final_stats=1 \
    -artifact_prefix="$findings/" "$corpus" "$seeds"
  ;;
*)
  echo "run.sh: unknown mode '$mode'" >&2
  exit 2
  ;;
esac
