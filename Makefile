# tlscache: `make run` starts the cache service, `make test` runs the whole test suite.
# Both install what they need (Debian 12 packages, via apt-get) and build what they need.

BUILD_DIR ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
# Flags for `make run`, e.g. make run RUN_FLAGS='--store=redis://127.0.0.1:6379'
RUN_FLAGS ?=
# Extra arguments for ctest, e.g. make test CTEST_ARGS='-R RedisStore'
CTEST_ARGS ?=

DEB_PACKAGES := build-essential cmake ninja-build ccache pkg-config \
	libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
	libabsl-dev libssl-dev libhiredis-dev libgtest-dev libgmock-dev \
	redis-server redis-tools haproxy nginx openssl python3

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build run test demo clean

all: build

# Installs only the packages that are missing; a machine that has them all is left alone.
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	exec $(BUILD_DIR)/bin/tlscache-server $(RUN_FLAGS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# A 3-node nginx farm with the preload behind HAProxy; 10 connections; then everything stops.
demo: build
	TLSCACHE_BIN_DIR=$(abspath $(BUILD_DIR))/bin python3 tools/demo.py

clean:
	rm -rf $(BUILD_DIR)
