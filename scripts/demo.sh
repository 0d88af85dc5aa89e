#!/usr/bin/env bash
# Build firesync, start the Firestore emulator and firesyncd, play the web
# app for one guest (capture a photo, mark the session captured) and print
# where the result and its renditions are.  The guest is Grace Hopper's
# portrait (US Navy, public domain) from Debian's python-matplotlib-data,
# through the cartoon look, with an example event frame.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh"
[ -x configure ] || autoreconf -fi
mkdir -p build/plain
(cd build/plain && { [ -f Makefile ] || "$top/configure" >/dev/null; } && make -j"$(nproc)" >/dev/null)
photo=/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg
if [ ! -r "$photo" ]; then
  echo "demo.sh: $photo is missing (apt-get install python-matplotlib-data)" >&2
  exit 1
fi
exec build/plain/tools/firesync-demo --photo "$photo" "$@"
