#!/bin/sh
# The layers of docs/architecture.md, checked on the sources: each layer
# includes only its own and lower layers' headers (the build's include
# paths enforce most of this; this also names the offender), the pipeline
# does not include the engine, and our own headers include one another
# without a circle.
set -eu
: "${abs_top_srcdir:?run by make check}"
cd "$abs_top_srcdir"
fail=0

# includes FILE: its quoted includes, one per line
includes() { sed -n 's/^#include "\([^"]*\)".*/\1/p' "$1"; }

# layer DIR ALLOWED-DIRS...: every quoted include of DIR/* is config.h, a
# generated google/ header, or a file in one of the allowed directories
layer() {
  dir=$1; shift
  for f in "$dir"/*.[ch]; do
    for inc in $(includes "$f"); do
      case $inc in config.h|google/*) continue ;; esac
      ok=no
      for a in "$@"; do [ -e "$a/$inc" ] && ok=yes; done
      if [ $ok = no ]; then
        echo "$f includes \"$inc\", outside its layer ($*)" >&2
        fail=1
      fi
    done
  done
}

layer base base
layer firestore base firestore
layer worker base worker include
layer daemon base firestore worker daemon include

# the Firestore wall: the daemon speaks to Firestore through firestore.h
# alone; no gRPC or protobuf-c header, call, type or status code of its
# own, and not the client's insides
for f in daemon/*.[ch]; do
  if grep -nE '^#include [<"](grpc/|protobuf-c/|google/)' "$f" >&2 ||
     grep -nE '\b(grpc_|gpr_|GRPC_|GPR_|google__|Google__|GOOGLE__|protobuf_c_|ProtobufC)' "$f" >&2; then
    echo "$f reaches past firestore.h into gRPC or protobuf-c (above)" >&2
    fail=1
  fi
  if includes "$f" | grep -qx client.h; then
    echo "$f includes firestore/client.h, the client's private insides" >&2
    fail=1
  fi
done

if includes daemon/pipeline.c | grep -qx engine.h ||
   includes daemon/pipeline.h | grep -qx engine.h; then
  echo "the pipeline includes the engine's header" >&2
  fail=1
fi

# our headers' include graph has no circle (tsort reports one)
for f in base/*.h firestore/*.h worker/*.h daemon/*.h; do
  b=$(basename "$f")
  echo "$b $b"
  for inc in $(includes "$f"); do
    case $inc in config.h|google/*|firesync/*) continue ;; esac
    echo "$inc $b"
  done
done > "${TMPDIR:-/tmp}/fs-includes.$$"
if tsort "${TMPDIR:-/tmp}/fs-includes.$$" 2>&1 >/dev/null | grep .; then
  echo "a circle among the headers (above)" >&2
  fail=1
fi
rm -f "${TMPDIR:-/tmp}/fs-includes.$$"

[ $fail = 0 ] && echo "layers: base < firestore, worker < daemon; no circle;" \
  "no gRPC or protobuf-c in daemon/"
exit $fail
