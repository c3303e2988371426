#!/bin/sh
# Builds and runs the example application in Examples/SongSearch (a package depending on
# Sextant by path): imports a catalogue with progress, builds its index, answers filtered
# queries with async calls, cancels a partitioning half-way and checks the store is unchanged.
# Usage: sh Scripts/example.sh [rows]
set -e
cd "$(dirname "$0")/.."
sh Scripts/prerequisites.sh
root="$(pwd)"
store="$(mktemp -d)/songs"
trap 'rm -rf "$(dirname "$store")"' EXIT
cd Examples/SongSearch
swift build --scratch-path "$root/.build-example"
"$root/.build-example/debug/SongSearch" "$store" "${1:-5000}"
