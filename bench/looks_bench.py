#!/usr/bin/python3
"""Time every bundled look, whole process, on one core, interleaved.

Each round runs every command once, in turn (a previous build's plugins,
this build's, the test-passthrough floor, OpenCV's cartoon), so a machine
that speeds up or slows down during the run moves every command alike;
the first round is a warm-up.  Prints one Markdown row a command: the
median and the range of the rounds, in seconds.

usage: looks_bench.py [--rounds N] [--cpu C] --transform PATH
           --plugins NAME=DIR [--plugins NAME=DIR ...]
           [--floor DIR] [--opencv] PHOTO...
  --plugins  a directory with cartoon.so and style.so, and its name
  --floor    a directory with passthrough.so (tests/plugins/.libs)
  --opencv   also bench/opencv_cartoon.py
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

LOOKS = [("cartoon", ["--model", "cartoon"]),
         ("oil", ["--model", "style", "--prompt", "oil"]),
         ("watercolour", ["--model", "style", "--prompt", "watercolor"]),
         ("pencil", ["--model", "style", "--prompt", "pencil"])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cpu", default="0")
    ap.add_argument("--transform", required=True)
    ap.add_argument("--plugins", action="append", default=[])
    ap.add_argument("--floor")
    ap.add_argument("--opencv", action="store_true")
    ap.add_argument("photos", nargs="+")
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(tempfile.mkdtemp(), "out.png")
    cmds = []
    for photo in a.photos:
        name = os.path.basename(photo)
        for spec in a.plugins:
            tag, d = spec.split("=", 1)
            for look, args in LOOKS:
                cmds.append(("%s %s %s" % (name, tag, look),
                             [a.transform, "--plugin-dir", d] + args +
                             [photo, out]))
        if a.floor:
            cmds.append(("%s floor (test-passthrough)" % name,
                         [a.transform, "--plugin-dir", a.floor,
                          "--model", "test-passthrough", photo, out]))
        if a.opencv:
            cmds.append(("%s OpenCV cartoon" % name,
                         ["/usr/bin/python3",
                          os.path.join(here, "opencv_cartoon.py"), photo,
                          out]))
    times = {label: [] for label, _ in cmds}
    for r in range(a.rounds + 1):
        for label, argv in cmds:
            t = time.perf_counter()
            subprocess.run(["taskset", "-c", a.cpu] + argv, check=True,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            if r > 0:
                times[label].append(time.perf_counter() - t)
    print("| command | median | range |")
    print("|---|---|---|")
    for label, _ in cmds:
        v = times[label]
        print("| %s | %.3f s | %.3f–%.3f s |" % (label, statistics.median(v),
                                               min(v), max(v)))


if __name__ == "__main__":
    sys.exit(main())
