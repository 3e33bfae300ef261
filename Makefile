# runspace -- top-level entry points. Two commands set up a fresh Debian machine:
#   make demo   install missing packages, build, run the demo on built-in data
#   make test   the same, then every test: plain, AddressSanitizer+UBSan, ThreadSanitizer
# Also: make build, make bench, make install (PREFIX=/usr/local), make format, make clean.

PACKAGES := gcc make cmake pkg-config liblua5.4-dev libjansson-dev libcmocka-dev iproute2 nftables
BENCH_PACKAGES := nmap parallel
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

RELEASE := build/release
TEST_BUILDS := plain asan tsan

.PHONY: all deps bench-deps build demo test test-plain test-asan test-tsan bench install format clean

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

test: demo
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan
	@echo "all tests passed: plain, AddressSanitizer+UBSan, ThreadSanitizer"

bench: bench-deps build
	./$(RELEASE)/bench/bench_core
	./$(RELEASE)/bench/bench_scan
	./$(RELEASE)/bench/bench_cli

install: build
	cmake --install $(RELEASE) --prefix $(PREFIX)

format:
	clang-format -i include/*.h src/*.c src/*.h tests/*.c tests/*.h examples/*.c bench/*.c

clean:
	rm -rf build
