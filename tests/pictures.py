"""Small PNG pictures for the tests, written and read with the standard library only."""

from __future__ import annotations

import struct
import zlib


def make_png(width: int, height: int) -> bytes:
    """An RGB PNG whose pixel (x, y) is (x, y, 200): small enough to check pixel by pixel."""
    rows = b"".join(
        b"\x00" + bytes(channel for x in range(width) for channel in (x, y, 200))
        for y in range(height)
    )

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_pixels(data: bytes) -> list[list[tuple[int, int, int]]]:
    """Decode an unfiltered 8-bit RGB PNG (what ``make_png`` writes) into rows of pixels."""
    position, idat, width = 8, b"", 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", body[:4])[0]
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    rows = [raw[i : i + stride] for i in range(0, len(raw), stride)]
    assert all(row[0] == 0 for row in rows)
    return [
        [(row[1 + 3 * x], row[2 + 3 * x], row[3 + 3 * x]) for x in range(width)] for row in rows
    ]
