#!/bin/sh
# Runs the whole test suite (installs LMDB and LZ4 first if needed).
set -e
cd "$(dirname "$0")/.."
sh Scripts/prerequisites.sh
swift build --build-tests
swift test --skip-build "$@"
