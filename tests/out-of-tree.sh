#!/bin/sh
# A vendor's view: install firesync, build the example plugin outside the
# tree with only the installed header and pkg-config file, and run it on a
# JPEG with the installed firesync-transform.  The installed worker, which
# runs third-party code, links no gRPC, TLS or HTTP library; firesyncd
# links no image library.
set -eu
: "${abs_top_builddir:?run by make check}"
tmp=$(mktemp -d /tmp/fsvendor-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
${MAKE:-make} -s -C "$abs_top_builddir" install DESTDIR="$tmp/root" >/dev/null

worker="$tmp/root$libexecdir/firesync/firesync-worker"
if ldd "$worker" | grep -E 'lib(grpc|gpr|ssl|crypto|curl|protobuf)'; then
  echo "firesync-worker links libraries it does not need (above)" >&2
  exit 1
fi
echo "firesync-worker links: $(ldd "$worker" | awk '{print $1}' | tr '\n' ' ')"

# firesyncd only starts and feeds workers: no image library in it
daemon="$tmp/root$sbindir/firesyncd"
if ldd "$daemon" | grep -E 'lib(png|jpeg)'; then
  echo "firesyncd links an image library (above): images are the workers'" >&2
  exit 1
fi

export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
export PKG_CONFIG_PATH="$tmp/root$libdir/pkgconfig"
export PKG_CONFIG_LIBDIR="$tmp/root$libdir/pkgconfig"
pkg-config --exists firesync-plugin
mkdir "$tmp/vendor"
cp "$abs_top_srcdir/examples/plugin-sepia/sepia.c" \
   "$abs_top_srcdir/examples/plugin-sepia/Makefile" "$tmp/vendor/"
make -s -C "$tmp/vendor" CFLAGS="-O2 -Wall -Wextra -Werror"
chmod 755 "$tmp/vendor/sepia.so"

# a JPEG to work on: 64x48 of noise, encoded by libjpeg-turbo's cjpeg
{ printf 'P6\n64 48\n255\n'; head -c 9216 /dev/urandom; } | cjpeg > "$tmp/in.jpg"
FIRESYNC_WORKER="$worker" \
  "$tmp/root$bindir/firesync-transform" --plugin-dir "$tmp/vendor" \
  --model sepia "$tmp/in.jpg" "$tmp/out.png"
head -c 8 "$tmp/out.png" | od -An -c | grep -q 'P   N   G'
echo "out-of-tree plugin built with pkg-config and run on a JPEG: ok"
