#!/bin/sh
# Installs the C libraries Sextant links (LMDB, LZ4) when they are missing. Debian/Ubuntu.
set -e
if pkg-config --exists lmdb liblz4 2>/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "installing liblmdb-dev liblz4-dev pkg-config ..." >&2
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liblmdb-dev liblz4-dev pkg-config >&2
