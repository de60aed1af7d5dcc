#!/usr/bin/env python3
"""Draws Vigil's icon (a pulse trace on a teal tile) as RGBA PNGs, with the standard library only.
Run from anywhere: writes 32x32.png, 128x128.png, 128x128@2x.png and icon.png beside this file."""
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
# The trace, in unit coordinates: baseline, a spike, a dip, back to baseline.
TRACE = [(0.12, 0.55), (0.38, 0.55), (0.46, 0.25), (0.56, 0.78), (0.64, 0.55), (0.88, 0.55)]


def inside_rounded_square(x, y, r):
    cx, cy = min(max(x, r), 1 - r), min(max(y, r), 1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def distance_to_trace(x, y):
    best = 1.0
    for (x0, y0), (x1, y1) in zip(TRACE, TRACE[1:]):
        dx, dy = x1 - x0, y1 - y0
        t = max(0.0, min(1.0, ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(x - (x0 + t * dx), y - (y0 + t * dy)))
    return best


def pixel(size, px, py):
    samples = 4
    teal = white = 0
    for sx in range(samples):
        for sy in range(samples):
            x, y = (px + (sx + 0.5) / samples) / size, (py + (sy + 0.5) / samples) / size
            if inside_rounded_square(x, y, 0.2):
                if distance_to_trace(x, y) < 0.055:
                    white += 1
                else:
                    teal += 1
    n = samples * samples
    alpha = (teal + white) / n
    if alpha == 0:
        return (0, 0, 0, 0)
    w = white / (teal + white)
    rgb = [round(c0 * (1 - w) + 255 * w) for c0 in (14, 116, 120)]
    return (*rgb, round(alpha * 255))


def png(size):
    rows = b"".join(b"\0" + b"".join(bytes(pixel(size, x, y)) for x in range(size)) for y in range(size))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


for name, size in [("32x32.png", 32), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)]:
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(png(size))
