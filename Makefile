# runspace -- top-level entry points. Two commands set up a fresh Debian machine:
#   make demo   install missing packages, build, run the demo on built-in data
#   make test   the same, then every test: plain, AddressSanitizer+UBSan, ThreadSanitizer, and
#               a short fixed run of each fuzzing harness on its seeds
# Also: make build, make bench, make fuzz (FUZZ_SECONDS=60 per harness), make install
# (PREFIX=/usr/local, DESTDIR for staging; the Lua module goes to PREFIX/lib/lua/5.4, on
# lua5.4's package.cpath), make format, make clean.

# redis-server and libhiredis-dev: runs that span machines (foreach --redis, worker) speak to
# Redis through hiredis, and their tests start a redis-server of their own.
# clang-14 and libclang-rt-14-dev: the fuzzing harnesses (fuzz/) need clang, and libFuzzer's
# runtime (libclang_rt.fuzzer) is in libclang-rt-14-dev, which clang-14 only recommends.
# lua5.4 and lua-busted: the Lua module (lua/) is loaded into Debian's lua5.4 by its tests,
# which are busted specs (tests/lua), the test framework Lua programmers use.
# netbase: /etc/services, the service names of scan output. nmap-common: nmap's nmap-services
# (--top-ports) and nmap.dtd, against which libxml2-utils' xmllint checks the scan's -oX files.
PACKAGES := gcc make cmake pkg-config liblua5.4-dev libjansson-dev libcmocka-dev iproute2 nftables \
            clang-14 libclang-rt-14-dev lua5.4 lua-busted netbase nmap-common libxml2-utils \
            redis-server libhiredis-dev
BENCH_PACKAGES := nmap parallel
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 60
FUZZERS := json scan_spec targets_file cli_values script
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

RELEASE := build/release
INSTALL_BUILD := build/install
TEST_BUILDS := plain asan tsan

.PHONY: all deps bench-deps build demo test test-plain test-asan test-tsan test-fuzz fuzz-build fuzz \
        bench install format clean

all: build

# Installs the Debian packages that are missing (apt-get update only when something is).
deps:
	@missing=""; for p in $(PACKAGES) $(EXTRA_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

bench-deps:
	@$(MAKE) --no-print-directory deps EXTRA_PACKAGES="$(BENCH_PACKAGES)"

build: deps
	cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DRS_BUILD_TESTS=OFF -DRS_BUILD_BENCH=ON
	cmake --build $(RELEASE) -j$(JOBS)

demo: build
	./$(RELEASE)/runspace demo

# One build directory per flavour; each runs the whole suite.
test-plain: deps
	cmake -S . -B build/test-plain -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build/test-plain -j$(JOBS)
	cd build/test-plain && ctest -j$(JOBS) --output-on-failure

test-asan: deps
	cmake -S . -B build/test-asan -DCMAKE_BUILD_TYPE=Debug -DRS_SANITIZE=address
	cmake --build build/test-asan -j$(JOBS)
	cd build/test-asan && ctest -j$(JOBS) --output-on-failure

test-tsan: deps
	cmake -S . -B build/test-tsan -DCMAKE_BUILD_TYPE=Debug -DRS_SANITIZE=thread
	cmake --build build/test-tsan -j$(JOBS)
	cd build/test-tsan && ctest -j$(JOBS) --output-on-failure

# The libFuzzer harnesses (clang, AddressSanitizer+UBSan). test-fuzz replays each harness's
# seeds and a fixed number of further inputs (fuzz/run.sh check).
fuzz-build: deps
	cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DRS_BUILD_FUZZ=ON -DRS_BUILD_TESTS=OFF
	cmake --build build/fuzz -j$(JOBS)

test-fuzz: fuzz-build
	cd build/fuzz && ctest -j$(JOBS) --output-on-failure

# Fuzzes each harness (FUZZERS=...) for FUZZ_SECONDS, one after the other; the corpus grows
# in build/fuzz/corpus/NAME, findings land in build/fuzz/findings/NAME.
fuzz: fuzz-build
	@failed=""; for f in $(FUZZERS); do \
	  echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
	  FUZZ_SECONDS=$(FUZZ_SECONDS) sh fuzz/run.sh fuzz build/fuzz/fuzz/fuzz_$$f $$f build/fuzz \
	    || failed="$$failed $$f"; \
	done; \
	if [ -n "$$failed" ]; then echo "findings from:$$failed (see build/fuzz/findings/)"; exit 1; fi

test: demo
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory test-fuzz
	@echo "all tests passed: plain, AddressSanitizer+UBSan, ThreadSanitizer, fuzzing seeds"

bench: bench-deps build
	./$(RELEASE)/bench/bench_core
	./$(RELEASE)/bench/bench_scan
	./$(RELEASE)/bench/bench_cli
	./$(RELEASE)/bench/bench_journal
	./$(RELEASE)/bench/bench_exec
	./$(RELEASE)/bench/bench_vs_lua
	./$(RELEASE)/bench/bench_redis
	LUA_CPATH_5_4='$(RELEASE)/lua/?.so;;' lua5.4 bench/bench_lua.lua

# Installs into $(DESTDIR)$(PREFIX) from a build of its own: the library (shared and static),
# header, runspace.pc, the CMake package, the program, its man page and shell completions. No
# packages are installed and no tests or benchmarks are built. PREFIX=/usr gives Debian's
# multiarch libdir (lib/x86_64-linux-gnu), as GNUInstallDirs decides.
install:
	cmake -S . -B $(INSTALL_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	  -DRS_BUILD_TESTS=OFF -DRS_BUILD_BENCH=OFF
	cmake --build $(INSTALL_BUILD) -j$(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(INSTALL_BUILD)

format:
	clang-format -i include/*.h src/*.c src/*.h tests/*.c tests/*.h examples/*.c bench/*.c \
	  fuzz/*.c fuzz/*.h lua/*.c lua/*.h

clean:
	rm -rf build
