#!/bin/sh
# Runs the whole test suite (installs LMDB and LZ4 first if needed).
set -e
cd "$(dirname "$0")/.."
sh Scripts/prerequisites.sh
swift build --build-tests
swift test --skip-build "$@"
# A test that blocks every cooperative thread runs alone (it would stall a parallel run).
if [ $# -eq 0 ]; then
    SEXTANT_POOL_TEST=1 swift test --skip-build --filter asyncWorkRunsWhileTheCooperativePoolIsBlocked
fi
