"""The pre-flight check of a sample's data: is it intact?

Corrupt data is a dataset problem, not decoder noise. A JPEG truncated and closed with an
end-of-image marker, or with bits flipped in its entropy-coded data, decodes "successfully" in
Pillow, OpenCV and torchvision (libjpeg only prints "Corrupt JPEG data: ..."), while FFmpeg and
strict libjpeg refuse it: measured as noise, those decoders would score flips on every corrupt file.
So a sample whose data fails this check is reported as corrupt and, by default, kept out of
every column (`--include-corrupt` measures it anyway).

- JPEG: libjpeg-turbo (simplejpeg) decodes it at 1/8 scale with every libjpeg warning an error.
  The scaled decode still reads every entropy-coded segment, so it sees the warnings a full
  decode would, at a fraction of the cost. Data libjpeg cannot decode at all is left to the
  decoders, which report their own errors.
- PNG: every chunk's CRC-32 (Pillow does not check the image data's, libpng does).
- Other formats: the decoders' own errors.
"""

from __future__ import annotations

import zlib

from sysnoise.errors import SampleError, message
from sysnoise.pipeline.limits import current

CORRUPT = "corrupt data: "  # the prefix of every reason this check gives (results count them)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_intact(data: bytes) -> None:
    """Raise SampleError (its text starting with CORRUPT) when the data is corrupt."""
    problem = jpeg_problem(data) if data[:3] == b"\xff\xd8\xff" else (
        png_problem(data) if data.startswith(PNG_SIGNATURE) else None)
    if problem:
        raise SampleError(CORRUPT + problem)


def jpeg_problem(data: bytes) -> str | None:
    """libjpeg's warning on this JPEG, or None (clean, or not decodable at all)."""
    import simplejpeg

    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if width * height > current().max_pixels:  # decode() refuses it before any decoder runs
        return None
    scaled = {"min_height": 1, "min_width": 1, "min_factor": 8}
    try:
        simplejpeg.decode_jpeg(data, strict=True, **scaled)
        return None
    except ValueError as err:
        warning = message(err)
    try:
        simplejpeg.decode_jpeg(data, strict=False, **scaled)
    except ValueError:
        return None  # an error, not a warning
    return warning


def png_problem(data: bytes) -> str | None:
    """The first PNG chunk whose CRC-32 does not match, or None."""
    view, position = memoryview(data), len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        length = int.from_bytes(view[position : position + 4], "big")
        end = position + 8 + length
        kind = bytes(view[position + 4 : position + 8]).decode("latin-1")
        if end + 4 > len(data):
            return f"PNG chunk {kind!r} runs past the end of the file"
        if zlib.crc32(view[position + 4 : end]) != int.from_bytes(view[end : end + 4], "big"):
            return f"PNG chunk {kind!r} at byte {position} fails its CRC check"
        if kind == "IEND":
            return None
        position = end + 4
    return None
