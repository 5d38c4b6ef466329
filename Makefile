# tlscache: `make run` starts the cache service, `make test` runs the whole test suite.
# Both install what they need (Debian 12 packages, via apt-get) and build what they need.

BUILD_DIR ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
# Flags for `make run`, e.g. make run RUN_FLAGS='--store=redis://127.0.0.1:6379'
RUN_FLAGS ?=
# Extra arguments for ctest, e.g. make test CTEST_ARGS='-R RedisStore'
CTEST_ARGS ?=
# The libFuzzer targets (clang) and the ASan + UBSan build (clang) live beside the main build.
FUZZ_DIR ?= $(BUILD_DIR)/fuzz
ASAN_DIR ?= $(BUILD_DIR)/asan
# How long `make fuzz` runs each fuzz target, in seconds.
FUZZ_SECONDS ?= 60
# One fuzz target per seed corpus: tests/fuzz/corpus/NAME seeds NAME_fuzzer.
FUZZERS := $(notdir $(wildcard tests/fuzz/corpus/*))

DEB_PACKAGES := build-essential cmake ninja-build ccache pkg-config \
	libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
	libabsl-dev libssl-dev libhiredis-dev libgtest-dev libgmock-dev libbenchmark-dev \
	libcpp-httplib-dev python3-prometheus-client prometheus golang-go apache2 \
	redis-server redis-tools haproxy nginx openssl curl python3 clang libclang-rt-14-dev \
	dpkg-dev file lintian man-db systemd

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build fuzz-build asan-build package run test test-asan fuzz demo clean

all: build

# Installs only the packages that are missing; a machine that has them all is left alone.
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' \
	    || missing="$$missing $$p"; \
	done; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

CMAKE_CONFIGURE = cmake -S . -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache

$(BUILD_DIR)/build.ninja:
	$(CMAKE_CONFIGURE) -B $(BUILD_DIR) -DTLSCACHE_FUZZ_BIN_DIR=$(abspath $(FUZZ_DIR))/bin

$(FUZZ_DIR)/build.ninja:
	CC=clang CXX=clang++ $(CMAKE_CONFIGURE) -B $(FUZZ_DIR) -DTLSCACHE_FUZZ=ON \
	  -DTLSCACHE_BUILD_TESTS=OFF \
	  -DCMAKE_C_FLAGS='-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer' \
	  -DCMAKE_CXX_FLAGS='-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer'

$(ASAN_DIR)/build.ninja:
	CC=clang CXX=clang++ $(CMAKE_CONFIGURE) -B $(ASAN_DIR) -DTLSCACHE_SANITIZE=ON \
	  -DTLSCACHE_FUZZ_BIN_DIR=$(abspath $(FUZZ_DIR))/bin

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

fuzz-build: deps $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target tlscache_fuzzers

asan-build: deps $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)

run: build
	exec $(BUILD_DIR)/bin/tlscache-server $(RUN_FLAGS)

# The Debian packages (packaging/CMakeLists.txt) into $(BUILD_DIR)/packages/.
package: build
	rm -rf $(BUILD_DIR)/packages
	cd $(BUILD_DIR) && cpack --config CPackConfig.cmake

# The suite includes a short run of every fuzz target over its seed corpus, and the packages'.
test: build fuzz-build package
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The same suite built with ASan and UBSan (and clang's lock annotations checked).
test-asan: asan-build fuzz-build
	cd $(ASAN_DIR) && LSAN_OPTIONS=suppressions=$(abspath tests/sanitizers/lsan.supp) \
	  ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Each fuzz target for FUZZ_SECONDS, from its seeds; prints the executions of each.
fuzz: fuzz-build
	@for f in $(FUZZERS); do \
	  tests/fuzz/run_fuzzer.sh $(FUZZ_DIR)/bin/$${f}_fuzzer $(FUZZ_SECONDS) \
	    tests/fuzz/corpus/$$f || exit 1; \
	done

# A 3-node nginx farm with the preload behind HAProxy; 10 connections; then everything stops.
demo: build
	TLSCACHE_BIN_DIR=$(abspath $(BUILD_DIR))/bin PYTHONPATH=tests python3 tools/demo.py

clean:
	rm -rf $(BUILD_DIR)
