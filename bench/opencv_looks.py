#!/usr/bin/python3
"""OpenCV's two stock looks on a photo, for the README's sheets beside
firesync's: the classic cartoon recipe (as bench/opencv_cartoon.py) and
cv::stylization, the edge-aware "watercolour-like" filter of OpenCV's
photo module, with its default parameters.
usage: opencv_looks.py IN CARTOON_OUT STYLIZATION_OUT"""
import sys

import cv2

img = cv2.imread(sys.argv[1])
if img is None:
    sys.exit("opencv_looks.py: cannot read " + sys.argv[1])
gray = cv2.medianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 7)
edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                              cv2.THRESH_BINARY, 9, 9)
color = cv2.bilateralFilter(img, 9, 250, 250)
cv2.imwrite(sys.argv[2], cv2.bitwise_and(color, color, mask=edges))
cv2.imwrite(sys.argv[3], cv2.stylization(img))
