#!/usr/bin/python3
"""OpenCV's classic cartoon recipe, single-threaded, whole process
(decode, filter, PNG encode): the baseline firesync's cartoon model is
measured against.  usage: opencv_cartoon.py IN OUT"""
import sys

import cv2

cv2.setNumThreads(1)
img = cv2.imread(sys.argv[1])
gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
gray = cv2.medianBlur(gray, 7)
edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                              cv2.THRESH_BINARY, 9, 9)
color = cv2.bilateralFilter(img, 9, 250, 250)
cartoon = cv2.bitwise_and(color, color, mask=edges)
cv2.imwrite(sys.argv[2], cartoon)
