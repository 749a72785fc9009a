#!/usr/bin/env python3
"""Reads a PNG (8-bit RGB or RGBA, not interlaced: what Chromium writes) with the standard library
and prints JSON: width, height, distinct colours, and for each colour given on the command line
(#rrggbb) how many pixels lie within a small distance of it (anti-aliased edges excluded).

usage: png_colors.py FILE.png [--rows Y0:Y1] [#rrggbb ...]   (--rows: count only pixel rows Y0..Y1-1)"""
import json
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace != 0:
        raise ValueError("unsupported PNG: depth %d colour type %d interlace %d" % (depth, colour, interlace))
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    width, height, bpp, rows = read_png(sys.argv[1])
    args = sys.argv[2:]
    first, last = 0, height
    if args[:1] == ["--rows"]:
        first, last = (int(v) for v in args[1].split(":"))
        args = args[2:]
    counts = {}
    for row in rows[first:last]:
        for i in range(0, len(row), bpp):
            rgb = row[i:i + 3]
            counts[rgb] = counts.get(rgb, 0) + 1
    near = {}
    for target in args:
        t = bytes.fromhex(target.lstrip("#"))
        near[target] = sum(n for rgb, n in counts.items() if max(abs(rgb[k] - t[k]) for k in range(3)) <= 12)
    white = counts.get(b"\xff\xff\xff", 0)
    print(json.dumps({"width": width, "height": height, "distinct_colours": len(counts),
                      "white_fraction": round(white / (width * max(1, last - first)), 4), "near": near}))


if __name__ == "__main__":
    main()
