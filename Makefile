# libgreen — the README's two commands:
#   make test    build and run the whole suite: native (x86-64 assembly), the ucontext
#                fallback, ASan+UBSan, valgrind memcheck, and aarch64 under qemu-user
#   make bench   Release build, then the benchmarks (the talk's tables and the switch costs)
#   make bench-corpus   only the corpus of real programs (bench/corpus.sh)
#   make fuzz    the libFuzzer harnesses (tests/fuzz/), FUZZ_SECONDS each
#   make soak    httpd's and echo's handlers under 10,000 connections for SOAK_SECONDS
#                (default 1800): answers, fds, green threads, RSS slope (docs/testing.md)
#   make chaos   random kills and deadlines over a workload for CHAOS_SECONDS (default
#                600), invariants checked at the end; CHAOS_SEED replays a seed,
#                CHAOS_HUBS=N runs it over N hubs
# Each installs the Debian packages it needs when they are missing. And:
#   make install [PREFIX=/usr/local] [DESTDIR=]   Release build, installed (docs/install.md)

SHELL := /bin/bash
JOBS ?= $(shell nproc)
CTEST := ctest --output-on-failure -j$(JOBS)
ARCH := $(shell uname -m)

# The corpus of real programs (tests/corpus/, bench/corpus.sh); /usr/bin/time and pgrep
# run them. Debian 12's names: tinyproxy-bin and mariadb-server-core are the programs
# without their system services.
CORPUS_PKGS := siege tinyproxy-bin sysbench postgresql mariadb-server-core mariadb-client memcached nginx \
               curl time procps redis-server redis-tools
TEST_PKGS := cmake gcc make pkg-config libcmocka-dev liburing-dev valgrind libc-ares-dev libhttp-parser-dev libunwind-dev gdb \
             libssl-dev openssl \
             libcurl4-openssl-dev libhiredis-dev redis-server libjemalloc2 $(CORPUS_PKGS)
CROSS_PKGS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
BENCH_PKGS := cmake gcc make pkg-config liburing-dev valgrind libc-ares-dev libhttp-parser-dev wrk \
              libssl-dev openssl \
              iproute2 golang-go python3-gevent libcurl4-openssl-dev $(CORPUS_PKGS)

.PHONY: fuzz stress all test bench bench-peers bench-net bench-corpus deps-test deps-bench test-native \
        test-ucontext test-asan test-tsan test-valgrind test-aarch64 fault soak chaos install clean

all:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_EXAMPLES=ON -DGREEN_BENCH=ON
	cmake --build build -j$(JOBS)

# Install what is missing (Debian); silent when everything is there.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps-test:
	$(call apt_install,$(TEST_PKGS))
ifeq ($(ARCH),x86_64)
	$(call apt_install,$(CROSS_PKGS))
endif

deps-bench:
	$(call apt_install,$(BENCH_PKGS))

test: deps-test test-native test-ucontext test-asan test-tsan test-valgrind test-aarch64
	@echo "make test: all suites passed"

test-native:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_EXAMPLES=ON -DGREEN_BENCH=ON
	cmake --build build -j$(JOBS)
	cd build && $(CTEST)
	cd build && GREEN_POLLER=uring $(CTEST) -L hub

# Fault injection alone (tests/test_fault.c: every allocation libgreen makes fails in
# turn, fd exhaustion, peer resets), Debug and optimised; test-native runs it too.
fault:
	cmake -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF
	cmake --build build-debug -j$(JOBS) --target test_fault
	cd build-debug && $(CTEST) -L fault
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_EXAMPLES=ON -DGREEN_BENCH=ON
	cmake --build build -j$(JOBS) --target test_fault
	cd build && $(CTEST) -L fault

test-ucontext:
	cmake -S . -B build-ucontext -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_CONTEXT=ucontext \
	  -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF
	cmake --build build-ucontext -j$(JOBS)
	cd build-ucontext && $(CTEST)

test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGREEN_SANITIZE=address,undefined \
	  -DGREEN_TEST_SCALE=10 -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(CTEST)
	cd build-asan && GREEN_POLLER=uring $(CTEST) -L hub

# the tests that cross OS threads, under ThreadSanitizer (it allows ~8K fibers at once)
test-tsan:
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_SANITIZE=thread \
	  -DGREEN_TEST_SCALE=100 -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" $(CTEST) -L tsan

# memcheck over the suite built without sanitizers, at reduced scale
test-valgrind:
	cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_TEST_SCALE=100 \
	  -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF -DGREEN_TEST_WRAPPER="valgrind;-q;--error-exitcode=99;--leak-check=full;--errors-for-leak-kinds=definite"
	cmake --build build-valgrind -j$(JOBS)
	cd build-valgrind && $(CTEST) -L valgrind

test-aarch64:
ifeq ($(ARCH),x86_64)
	$(call apt_install,$(CROSS_PKGS))
	@dpkg --print-foreign-architectures | grep -qx arm64 || { echo "dpkg: adding architecture arm64"; \
	  SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); $$SUDO dpkg --add-architecture arm64; }
	$(call apt_install,libcmocka-dev:arm64)
	cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/toolchain-aarch64.cmake \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_TEST_SCALE=10 -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF
	cmake --build build-aarch64 -j$(JOBS)
	cd build-aarch64 && $(CTEST)
	cmake -S . -B build-aarch64-ucontext -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/toolchain-aarch64.cmake \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_CONTEXT=ucontext -DGREEN_TEST_SCALE=10 \
	  -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF
	cmake --build build-aarch64-ucontext -j$(JOBS)
	cd build-aarch64-ucontext && $(CTEST)
else
	@echo "aarch64: native here, covered by test-native"
endif

bench: deps-bench
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DGREEN_TESTS=OFF
	cmake --build build-release -j$(JOBS)
	bash bench/run.sh build-release

# The talk's two programs with Go goroutines and gevent (bench/peers/); `make bench`
# includes these rows too once the packages are installed.
bench-peers:
	$(call apt_install,golang-go python3-gevent)
	bash bench/run.sh build-release --peers-only

# Only the network benchmarks of issue 5 (sections F and G of bench/run.sh, ~3 minutes).
bench-net: deps-bench
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DGREEN_TESTS=OFF
	cmake --build build-release -j$(JOBS)
	bash bench/run.sh build-release --net-only

# Only the corpus of real programs (section R of bench/run.sh, ~1-2 minutes): wall time
# and peak RSS on real threads and under greenrun, at the tests' concurrency and 10x.
bench-corpus:
	$(call apt_install,cmake gcc make pkg-config $(CORPUS_PKGS))
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DGREEN_TESTS=OFF
	cmake --build build-release -j$(JOBS)
	bash bench/corpus.sh build-release

# Soak (tests/soak/, docs/testing.md): a server process with examples/httpd's and
# examples/echo's handlers and a churn of green threads, under SOAK_CONNS connections
# from a client process for SOAK_SECONDS; RSS slope after SOAK_WARMUP seconds below
# SOAK_SLOPE %/min. `make test` runs a 60 s version (ctest label soak).
SOAK_SECONDS ?= 1800
SOAK_CONNS ?= 10000
SOAK_WARMUP ?= 300
SOAK_SLOPE ?= 1
soak:
	$(call apt_install,cmake gcc make pkg-config libcmocka-dev liburing-dev libhttp-parser-dev)
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_EXAMPLES=ON -DGREEN_BENCH=ON
	cmake --build build -j$(JOBS) --target soak_load soak_server
	build/tests/soak_load build/tests/soak_server $(SOAK_SECONDS) $(SOAK_CONNS) $(SOAK_WARMUP) $(SOAK_SLOPE)

# Chaos (tests/chaos/chaos.c, docs/testing.md) for CHAOS_SECONDS; `make test` runs 20 s
# of it (ctest label chaos), on one hub and on two. CHAOS_SEED=N replays a seed;
# CHAOS_HUBS=N (default 1) runs the workload over N hubs.
CHAOS_SECONDS ?= 600
CHAOS_HUBS ?= 1
chaos:
	$(call apt_install,cmake gcc make pkg-config libcmocka-dev liburing-dev)
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_EXAMPLES=ON -DGREEN_BENCH=ON
	cmake --build build -j$(JOBS) --target chaos
	CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_HUBS=$(CHAOS_HUBS) build/tests/chaos

# The tests that cross OS threads, STRESS_ROUNDS times two at once beside a spinning
# process (tests/stress.sh, docs/testing.md): races of a few instructions show up here.
# STRESS_TESTS="hubs_steal xsync" picks tests (ctest names); default: label hub and more.
STRESS_ROUNDS ?= 25
STRESS_TESTS ?=
stress:
	$(call apt_install,cmake gcc make pkg-config libcmocka-dev liburing-dev libhttp-parser-dev)
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_EXAMPLES=ON -DGREEN_BENCH=ON
	cmake --build build -j$(JOBS)
	bash tests/stress.sh build $(STRESS_ROUNDS) $(STRESS_TESTS)

# libFuzzer harnesses (tests/fuzz/), each for FUZZ_SECONDS (default 600) on its corpus,
# under ASan+UBSan; `make test` replays the committed corpora once.
FUZZ_SECONDS ?= 600
fuzz:
	$(call apt_install,clang libclang-rt-dev cmake make pkg-config libcmocka-dev libhttp-parser-dev)
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGREEN_FUZZ=ON \
	  -DGREEN_SANITIZE=address,undefined -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF
	cmake --build build-fuzz -j$(JOBS)
	bash tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

# A Release build of the libraries alone (with debug info: the gdb helper needs it; strip
# the installed files if you want them small), installed by CMake under $(DESTDIR)$(PREFIX):
# lib/ (libgreen.so, libgreen.a, libgreen-patch.so, pkgconfig/, cmake/green/), include/,
# bin/greenrun, share/libgreen/gdb/green.py and gdb's auto-load script. As root, into
# /usr or /usr/local with no DESTDIR, it runs ldconfig, so that programs find the new
# library at once.
PREFIX ?= /usr/local
INSTALL_BUILD ?= build-install
install:
	cmake -S . -B $(INSTALL_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG -g" \
	  -DCMAKE_INSTALL_PREFIX="$(PREFIX)" -DGREEN_TESTS=OFF -DGREEN_BENCH=OFF -DGREEN_EXAMPLES=OFF
	cmake --build $(INSTALL_BUILD) -j$(JOBS)
	DESTDIR="$(DESTDIR)" cmake --install $(INSTALL_BUILD)
	@case "$(DESTDIR):$(PREFIX):$$(id -u)" in :/usr:0|:/usr/local:0) ldconfig ;; esac
	@echo "installed in $(DESTDIR)$(PREFIX); linking against it: docs/install.md"

clean:
	rm -rf build build-*
