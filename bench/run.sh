#!/bin/bash
# Measures tlscache beside redis-benchmark, Apache mod_ssl with SSLSessionCache redis: and
# stock nginx, all on this machine and in this one run, and writes docs/benchmarks.md.
#   bench/run.sh [--seconds=5] [--out=FILE]
# It installs what it needs (Debian packages) and builds the tree first; run it as root.
set -euo pipefail
cd "$(dirname "$0")/.."
make build
if ! command -v apache2 >/dev/null && [ ! -x /usr/sbin/apache2 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends apache2
fi
# The farm helpers it shares with the tests: the tlsfarm package.
export PYTHONPATH="$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
exec python3 bench/run_bench.py "$@"
