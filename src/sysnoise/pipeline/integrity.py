"""The pre-flight check of a sample's data: is it intact?

Corrupt data is a dataset problem, not decoder noise. A JPEG truncated and closed with an
end-of-image marker, or with bits flipped in its entropy-coded data, decodes "successfully" in
Pillow, OpenCV and torchvision (libjpeg only prints "Corrupt JPEG data: ..."), while FFmpeg and
strict libjpeg refuse it: measured as noise, those decoders would score flips on every corrupt file.
So a sample whose data fails this check is reported as corrupt and, by default, kept out of
every column (`--include-corrupt` measures it anyway).

- JPEG and PNG: cut short (truncation; decode() refuses these for every decoder alike).
- JPEG: libjpeg-turbo (simplejpeg) decodes it at 1/8 scale in strict mode (every libjpeg warning
  an error); a warning about damaged data (LIBJPEG_CORRUPT) marks it corrupt. The scaled decode
  still reads every entropy-coded segment, so it sees the warnings a full decode would, at a
  fraction of the cost. Other failures are left to the decoders, which report their own errors.
- PNG: every chunk's CRC-32, and that the image data holds every row the header promises
  (Pillow fills missing rows silently; libpng refuses, and torchvision's libpng path crashes).
- Other formats: the decoders' own errors.
"""

from __future__ import annotations

import zlib

from sysnoise.errors import SampleError, message
from sysnoise.pipeline.limits import current

CORRUPT = "corrupt data: "  # the prefix of every reason this check gives (results count them)
JPEG_START, PNG_SIGNATURE = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
# libjpeg's warnings about damaged data (jerror.h: JWRN_EXTRANEOUS_DATA, _HIT_MARKER, _HUFF_BAD_CODE,
# _MUST_RESYNC, _ARITH_BAD_CODE, _BOGUS_ICC, _JPEG_EOF, _BOGUS_PROGRESSION); its other warnings
# (an unknown JFIF revision, odd SOS parameters) and its errors do not make data corrupt.
LIBJPEG_CORRUPT = ("Corrupt JPEG data", "Premature end of JPEG file", "Inconsistent progression sequence")


def check_intact(data: bytes) -> None:
    """Raise SampleError (its text starting with CORRUPT) when the data is corrupt."""
    problem = (
        truncation(data)
        or (jpeg_problem(data) if data.startswith(JPEG_START) else None)
        or (png_problem(data) if data.startswith(PNG_SIGNATURE) else None)
    )
    if problem:
        raise SampleError(CORRUPT + problem)


def truncation(data: bytes) -> str | None:
    """Why a JPEG or PNG is cut short (no end-of-image marker after its last scan, no IEND
    chunk), or None. decode() refuses such data for every decoder alike: libraries disagree about
    it (Pillow raises, OpenCV's imdecode returns None, FFmpeg returns a partly green image)."""
    if data.startswith(JPEG_START):
        scan = data.rfind(b"\xff\xda")
        if scan < 0 or data.rfind(b"\xff\xd9") < scan:
            return "truncated JPEG: no end-of-image marker after the last scan"
    elif data.startswith(PNG_SIGNATURE) and data.rfind(b"IEND") < 0:
        return "truncated PNG: no IEND chunk"
    return None


def jpeg_problem(data: bytes) -> str | None:
    """libjpeg's corrupt-data warning on this JPEG, or None (clean, or failing for another reason)."""
    import simplejpeg

    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        if width * height > current().max_pixels:  # decode() refuses it before any decoder runs
            return None
        simplejpeg.decode_jpeg(data, strict=True, min_height=1, min_width=1, min_factor=8)
    except ValueError as err:
        text = message(err)
        return text if text.startswith(LIBJPEG_CORRUPT) else None
    return None


def png_problem(data: bytes) -> str | None:
    """What is wrong with a PNG's chunks or image data, or None: a chunk whose CRC-32 does not
    match, or image data (IDAT, inflated) shorter than the header's size needs. Pillow fills the
    missing rows silently, libpng refuses (and torchvision's libpng path crashes the process)."""
    view, position = memoryview(data), len(PNG_SIGNATURE)
    needed, inflater, got = None, zlib.decompressobj(), 0
    while position + 12 <= len(data):
        length = int.from_bytes(view[position : position + 4], "big")
        end = position + 8 + length
        kind = bytes(view[position + 4 : position + 8]).decode("latin-1")
        if end + 4 > len(data):
            return f"PNG chunk {kind!r} runs past the end of the file"
        body = view[position + 8 : end]
        if zlib.crc32(view[position + 4 : end]) != int.from_bytes(view[end : end + 4], "big"):
            return f"PNG chunk {kind!r} at byte {position} fails its CRC check"
        if kind == "IHDR" and length == 13:
            needed = png_data_size(*(int.from_bytes(body[i : i + 4], "big") for i in (0, 4)), *body[8:10], body[12])
        elif kind == "IDAT" and needed is not None and got < needed:
            try:
                got += _inflated_size(inflater, body, needed - got)
            except zlib.error as err:
                return f"PNG image data cannot be inflated ({err})"
        elif kind == "IEND":
            break
        position = end + 4
    if needed is not None and got < needed:
        return f"PNG image data holds {got} of the {needed} bytes its header needs"
    return None


def _inflated_size(inflater, compressed, limit: int) -> int:
    """How many bytes `compressed` inflates to, counting at most `limit`, 1 MiB at a time."""
    total, pending = 0, bytes(compressed)
    while pending and total < limit:
        total += len(inflater.decompress(pending, 2**20))
        pending = inflater.unconsumed_tail
    return total


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type


def png_data_size(width: int, height: int, depth: int, colour_type: int, interlace: int) -> int:
    """Bytes of inflated image data a PNG of this header holds: per row a filter byte and the
    packed samples; an interlaced (Adam7) image holds its seven reduced images one after another."""
    bits = CHANNELS.get(colour_type, 4) * depth

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits + 7) // 8) if w > 0 and h > 0 else 0

    if not interlace:
        return rows(width, height)
    return sum(rows((width - x + dx - 1) // dx, (height - y + dy - 1) // dy) for x, y, dx, dy in ADAM7)
