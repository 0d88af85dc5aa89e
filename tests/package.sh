#!/bin/sh
# The Debian packages, as an admin and a plugin vendor get them: built
# with dpkg-buildpackage from the release tarball, checked by lintian,
# installed on this machine, tried, and purged again.
#
#   tests/package.sh firesync-VERSION.tar.gz
#
# Run as root (it installs packages) by make package-check and .ci/run.
set -eu

tarball=$(readlink -f "${1:?usage: tests/package.sh firesync-VERSION.tar.gz}")
for tool in dpkg-buildpackage lintian apt-get pkg-config cc systemd-analyze; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "package: $tool is missing: apt-get install debhelper lintian dpkg-dev pkg-config systemd" >&2
    exit 1
  }
done
[ "$(id -u)" = 0 ] || { echo "package: run as root (it installs the packages)" >&2; exit 1; }
if dpkg-query -W -f='${Status}' firesync 2>/dev/null | grep -q "ok installed"; then
  echo "package: firesync is installed already; this test would purge it" >&2
  exit 1
fi

work=$(mktemp -d /tmp/fspkg-XXXXXX)
cleanup() {
  apt-get purge -y firesync firesync-plugin-dev >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '== %s\n' "$*"; }

step "build from $(basename "$tarball")"
tar -C "$work" -xzf "$tarball"
src=$(echo "$work"/firesync-*)
version=$(sed -n 's/^AC_INIT(\[firesync\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
changelog=$(cd "$src" && dpkg-parsechangelog -S Version)
[ "$version" = "$changelog" ] || {
  echo "package: configure.ac says $version, debian/changelog $changelog" >&2
  exit 1
}
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" \
  dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
  tail -n 60 "$work/build.log"
  echo "package: dpkg-buildpackage failed; the log is above" >&2
  exit 1
}
arch=$(dpkg --print-architecture)
deb="$work/firesync_${version}_${arch}.deb"
dev="$work/firesync-plugin-dev_${version}_${arch}.deb"
ls "$deb" "$dev" >/dev/null

step "lintian"
# errors and warnings fail; overrides, each with its reason, are in debian/
lintian --fail-on error,warning --tag-display-limit 0 \
  "$work"/firesync_"${version}"_"${arch}".changes

step "install"
apt-get install -y "$deb" "$dev" >"$work/install.log" 2>&1 || {
  cat "$work/install.log"
  exit 1
}
# a fresh install has no configuration: the unit is there, and it is
# skipped rather than failed until /etc/firesync/firesyncd.conf exists
test -f /etc/firesync/firesyncd.conf.example
test ! -e /etc/firesync/firesyncd.conf
grep -q '^ConditionPathExists=/etc/firesync/firesyncd.conf$' \
  /lib/systemd/system/firesyncd.service

step "programs"
for p in firesyncd firesync-transform firesyncctl /usr/libexec/firesync/firesync-worker; do
  out=$($p --version)
  [ "$out" = "$(basename "$p") $version" ] || {
    echo "package: $p --version says '$out', not '$(basename "$p") $version'" >&2
    exit 1
  }
done
grep -q "^Version: $version\$" "$(pkg-config --variable=pcfiledir firesync-plugin)/firesync-plugin.pc"
firesyncd --list-plugins | grep -q "loaded   cartoon $version"
# a photo through the installed worker and bundled plugin
cat >"$work/photo.c" <<'EOF'
#include <stdio.h>
#include <jpeglib.h>
int main(void)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	unsigned char row[96 * 3];
	JSAMPROW r = row;

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, stdout);
	c.image_width = 96;
	c.image_height = 64;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_start_compress(&c, TRUE);
	for (int y = 0; y < 64; y++) {
		for (int x = 0; x < 96 * 3; x++)
			row[x] = (unsigned char)(x * 7 + y * 3);
		jpeg_write_scanlines(&c, &r, 1);
	}
	jpeg_finish_compress(&c);
	return 0;
}
EOF
cc -o "$work/photo" "$work/photo.c" -ljpeg
"$work/photo" >"$work/in.jpg"
firesync-transform --model cartoon "$work/in.jpg" "$work/out.png"
head -c 8 "$work/out.png" | od -An -c | grep -q 'P   N   G'

step "an out-of-tree plugin against firesync-plugin-dev"
[ "$(pkg-config --modversion firesync-plugin)" = "$version" ]
pkg-config --cflags firesync-plugin >/dev/null
[ "$(pkg-config --variable=plugindir firesync-plugin)" = \
  "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/firesync/plugins" ]
mkdir "$work/sepia"
cp /usr/share/doc/firesync-plugin-dev/examples/plugin-sepia/* "$work/sepia/"
make -s -C "$work/sepia"
chmod 755 "$work/sepia" "$work/sepia"/*.so
firesync-transform --plugin-dir "$work/sepia" --model sepia \
  "$work/in.jpg" "$work/sepia.png"
test -s "$work/sepia.png"

step "systemd-analyze verify"
systemd-analyze verify --man=no /lib/systemd/system/firesyncd.service

step "purge"
apt-get purge -y firesync firesync-plugin-dev >"$work/purge.log" 2>&1
for f in /usr/sbin/firesyncd /usr/include/firesync/plugin.h \
    /lib/systemd/system/firesyncd.service /etc/firesync/firesyncd.conf.example; do
  [ ! -e "$f" ] || { echo "package: $f is still there after purge" >&2; exit 1; }
done
echo "package: firesync $version built, lintian-clean, installed, tried and purged"
