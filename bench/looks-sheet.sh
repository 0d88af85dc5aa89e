#!/bin/sh
# looks-sheet.sh - the README's sheets of the bundled looks on portraits:
# each photo at booth size and small, through cartoon, oil, watercolour and
# pencil, beside OpenCV's classic cartoon and cv::stylization on the same
# photo, with 100% close-ups of the face.
#
# usage: bench/looks-sheet.sh BUILDDIR OUTDIR
#   BUILDDIR  a build tree (tools/firesync-transform, plugins/*/.libs)
#   OUTDIR    where looks-astronaut.jpg and looks-hopper.jpg are written
#
# Needs Debian's imagemagick, fonts-dejavu-core, python3-opencv, and the
# photos' packages:
#   astronaut.png    python3-skimage (NASA, public domain)
#   grace_hopper.jpg python-matplotlib-data (US Navy, public domain)
set -eu
build=$(cd "$1" && pwd)
out=$(mkdir -p "$2" && cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
astronaut=/usr/lib/python3/dist-packages/skimage/data/astronaut.png
hopper=/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
for f in "$astronaut" "$hopper" "$font"; do
	[ -r "$f" ] || { echo "looks-sheet.sh: $f is missing" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/plugins"
cp "$build"/plugins/cartoon/.libs/cartoon.so \
    "$build"/plugins/style/.libs/style.so "$tmp/plugins/"
transform="$build/tools/firesync-transform --plugin-dir $tmp/plugins"

# looks NAME IN: every look of IN as $tmp/NAME-LOOK.png
looks() {
	$transform --model cartoon "$2" "$tmp/$1-cartoon.png" >/dev/null
	for p in oil watercolor pencil; do
		$transform --model style --prompt "$p" "$2" \
		    "$tmp/$1-$p.png" >/dev/null
	done
	/usr/bin/python3 "$here/opencv_looks.py" "$2" \
	    "$tmp/$1-cvcartoon.png" "$tmp/$1-cvstylization.png"
	cp "$2" "$tmp/$1-photo.${2##*.}"
}

# row NAME GEOMETRY [CROP]: one row of tiles, the photo first
row() {
	set -- "$1" "$2" "${3:-}"
	i=0
	for l in photo cartoon oil watercolor pencil cvcartoon cvstylization; do
		src=$(ls "$tmp/$1-$l".*)
		if [ -n "$3" ]; then
			convert "$src" -crop "$3" +repage -resize "$2" \
			    "$tmp/tile-$i.png"
		else
			convert "$src" -resize "$2" "$tmp/tile-$i.png"
		fi
		i=$((i + 1))
	done
	montage "$tmp"/tile-[0-6].png -tile 7x1 -geometry +3+3 \
	    "$tmp/row-$1${3:+-crop}.png"
}

# labels WIDTH: the column titles, each WIDTH + 6 pixels wide (DejaVu Sans,
# Debian's fonts-dejavu-core)
labels() {
	i=0
	for t in photo cartoon oil watercolour pencil 'OpenCV cartoon' \
	    'cv::stylization'; do
		convert -size "$(($1 + 6))"x30 xc:white -font "$font" \
		    -gravity center -pointsize 17 -annotate 0 "$t" \
		    "$tmp/label-$i.png"
		i=$((i + 1))
	done
	convert "$tmp"/label-[0-6].png +append "$tmp/labels.png"
}

# sheet NAME SMALL BIG TILE CROP: the rows of SMALL and BIG (the same photo
# at booth size) and of BIG's face (CROP), tiles of TILE, as
# $out/looks-NAME.jpg
sheet() {
	looks "$1-small" "$2"
	looks "$1-big" "$3"
	row "$1-small" "$4"
	row "$1-big" "$4"
	row "$1-big" "$4" "$5"
	labels "${4%x*}"
	convert "$tmp/labels.png" "$tmp/row-$1-small.png" \
	    "$tmp/row-$1-big.png" "$tmp/row-$1-big-crop.png" -append \
	    -colorspace sRGB -type TrueColor -quality 88 "$out/looks-$1.jpg"
}

# the astronaut at 512 px and at 2048 px (booth size); Grace Hopper at
# 512 x 600 and three times that; their faces at 100%
convert "$astronaut" -filter Lanczos -resize 2048x2048 "$tmp/a2048.png"
sheet astronaut "$astronaut" "$tmp/a2048.png" 260x260 560x560+740+140
convert "$hopper" -filter Lanczos -resize 300% -quality 95 "$tmp/h3x.jpg"
sheet hopper "$hopper" "$tmp/h3x.jpg" 222x260 600x700+470+380
echo "looks-sheet.sh: wrote $out/looks-astronaut.jpg $out/looks-hopper.jpg"
