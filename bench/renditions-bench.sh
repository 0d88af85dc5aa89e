#!/bin/sh
# renditions-bench.sh - what the event's frame and each rendition cost on
# an 8 MP result, beside the bare result, in one run: firesync-transform
# in process (the worker's own code, no process hops), the cartoon look,
# the median of N runs each.
#
# usage: bench/renditions-bench.sh BUILDDIR [N]
#
# Needs Debian's imagemagick and python-matplotlib-data (grace_hopper.jpg,
# US Navy, public domain, scaled to 2448x3264: 8 MP).
set -eu
PATH=/usr/bin:/bin:$PATH
build=$(cd "$1" && pwd)
n=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/plugins" "$tmp/out"
cp "$build"/plugins/cartoon/.libs/cartoon.so "$tmp/plugins/"
convert /usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg \
    -resize 2448x3264^ -gravity center -extent 2448x3264 -quality 92 \
    "$tmp/photo.jpg"
# a frame of the photo's shape: a border and a band at the bottom
convert -size 1200x1600 xc:none -fill '#16264f' \
    -draw 'rectangle 0,0 1199,1599' -fill black \
    -draw 'rectangle 75,75 1124,1399' -alpha set -channel A \
    -fx 'r==0 && g==0 && b==0 ? 0 : 1' +channel "$tmp/frame.png"
run() {
	label=$1
	shift
	line=$("$build/tools/firesync-transform" --in-process --repeat "$n" \
	    --plugin-dir "$tmp/plugins" --model cartoon "$@" "$tmp/photo.jpg" \
	    "$tmp/out/result.png")
	ms=$(echo "$line" | sed -n 's/.* in \([0-9.]*\) ms.*/\1/p' | head -1)
	size=$(stat -c %s "$tmp/out/result.png")
	extra=""
	for f in "$tmp"/out/*.jpg "$tmp"/out/*[!t].png; do
		[ -e "$f" ] || continue
		[ "$(basename "$f")" = result.png ] && continue
		extra="$extra $(basename "$f") $(identify -format '%wx%h' "$f") $(stat -c %s "$f") B;"
		rm -f "$f"
	done
	printf '%-28s %8s ms  result.png %9s B %s\n' "$label" "$ms" "$size" \
	    "$extra"
}
echo "photo: 2448x3264 JPEG, $(stat -c %s "$tmp/photo.jpg") B; $n runs each, median"
run "bare"
run "frame" --frame "$tmp/frame.png"
run "frame + thumb:480:jpeg" --frame "$tmp/frame.png" \
    --rendition thumb:480:jpeg
run "frame + share:2048:jpeg" --frame "$tmp/frame.png" \
    --rendition share:2048:jpeg
run "frame + print:1200x1800@300" --frame "$tmp/frame.png" \
    --rendition print:1200x1800:jpeg@300dpi
run "frame + share:2048:png" --frame "$tmp/frame.png" \
    --rendition share:2048:png
run "frame + all three jpeg" --frame "$tmp/frame.png" \
    --rendition thumb:480:jpeg --rendition share:2048:jpeg \
    --rendition print:1200x1800:jpeg@300dpi
run "max-result-megapixels 2" --max-result-megapixels 2
run "bare (again)"
