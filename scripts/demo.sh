#!/usr/bin/env bash
# Build firesync, start the Firestore emulator and firesyncd, play the web
# app for one guest (capture a photo, mark the session captured) and print
# where the result is.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh"
[ -x configure ] || autoreconf -fi
mkdir -p build/plain
(cd build/plain && { [ -f Makefile ] || "$top/configure" >/dev/null; } && make -j"$(nproc)" >/dev/null)
exec build/plain/tools/firesync-demo "$@"
