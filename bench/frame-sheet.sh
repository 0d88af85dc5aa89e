#!/bin/sh
# frame-sheet.sh - the README's picture of an event's frame and the
# renditions: a portrait through the cartoon look with a frame drawn here
# (a border and a band with the couple's names), and the renditions
# firesyncd writes beside result.png, each labelled with its size.
#
# usage: bench/frame-sheet.sh BUILDDIR OUT.jpg
#   BUILDDIR  a build tree (tools/firesync-transform, plugins/*/.libs)
#
# Needs Debian's imagemagick, fonts-dejavu-core and python-matplotlib-data
# (grace_hopper.jpg: US Navy, public domain).
set -eu
PATH=/usr/bin:/bin:$PATH	# Debian's ImageMagick, not another convert
build=$(cd "$1" && pwd)
out=$2
photo=/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
for f in "$photo" "$font"; do
	[ -r "$f" ] || { echo "frame-sheet.sh: $f is missing" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/plugins"
cp "$build"/plugins/cartoon/.libs/cartoon.so "$tmp/plugins/"

# the frame: 1000x1200 (5:6, the photo's shape), a navy border with a gold
# line, a band along the bottom with the names, transparent inside
convert -size 1000x1200 xc:none \
    -fill '#16264f' -draw 'rectangle 0,0 999,1199' \
    -fill none -stroke '#d4af37' -strokewidth 4 \
    -draw 'rectangle 46,46 953,1013' \
    -stroke none -fill black -draw 'color 500,500 floodfill' \
    -alpha set -channel A -fx 'r==0 && g==0 && b==0 ? 0 : 1' +channel \
    -fill '#d4af37' -font "$font" -pointsize 64 -gravity south \
    -annotate +0+70 'Ada & Grace' -pointsize 34 -annotate +0+30 \
    '9 December 2026' "$tmp/frame.png"

"$build/tools/firesync-transform" --plugin-dir "$tmp/plugins" \
    --model cartoon --frame "$tmp/frame.png" \
    --rendition thumb:480:jpeg --rendition share:2048:jpeg \
    --rendition print:1200x1800:jpeg@300dpi \
    "$photo" "$tmp/result.png" >/dev/null

# tiles: the photo, the framed result, and each rendition drawn at the
# same scale (print's 1200x1800 against the result's 512x600)
label() {
	convert "$1" -resize "$2" -background white -gravity center \
	    -font "$font" -pointsize 16 label:"$3" -append "$tmp/$4.png"
}
size() { identify -format '%wx%h' "$1"; }
label "$photo" 260x "photo $(size "$photo")" a
label "$tmp/result.png" 260x "result.png $(size "$tmp/result.png"), framed" b
label "$tmp/thumb.jpg" 244x "thumb.jpg $(size "$tmp/thumb.jpg")" c
label "$tmp/print.jpg" 260x "print.jpg $(size "$tmp/print.jpg"), 300 dpi" d
montage "$tmp"/[abcd].png -tile 4x1 -geometry +6+6 -background white \
    -quality 85 "$out"
echo "$out: $(size "$out")"
