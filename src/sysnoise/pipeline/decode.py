"""Decoders: encoded bytes -> HxWx3 uint8 RGB array. One function per library behaviour.

Every decoder goes through `decode()`, which for all of them alike
- refuses empty files, unreadable headers and images over the pixel limit (pipeline.limits:
  Pillow's decompression-bomb guard by default, applied before any library allocates);
- refuses truncated JPEG and PNG data (integrity.truncation: no end-of-image marker after the
  last scan, no IEND chunk), because libraries disagree about it: Pillow raises, OpenCV's imdecode
  returns None, FFmpeg returns a partly green image without an error;
- checks the output's shape, so a decoder that silently returns nothing or the wrong thing is
  caught here rather than downstream.
A decoder's failure is a DecodeError whose text (errors.message) is all that is kept: the
library's exception, whose traceback can hold a huge half-decoded buffer, is dropped at once.

The reference behaviour for edge cases (the `pillow` decoder; docs/preprocessing.md): EXIF
orientation is not applied; CMYK/YCCK -> RGB by Pillow; grayscale replicated to three channels;
alpha dropped (not composited); palette expanded; 16-bit samples -> 8 bit by keeping the high byte
(x >> 8, as Pillow does for 16-bit RGB and libpng's strip_16), never clipped.

Registry meta: `library` (module whose version results record), `available` (a check for
optional libraries; an unavailable decoder is listed but skipped), `orientation` (applies EXIF
orientation, so width and height may swap), `sized` (takes the size the pipeline will resize to).
"""

from __future__ import annotations

import io
import warnings
from typing import Callable

import numpy as np

from sysnoise.errors import DecodeError, message
from sysnoise.pipeline.integrity import PNG_SIGNATURE, png_problem, truncation
from sysnoise.pipeline.limits import check_pixels
from sysnoise.registry import Registry
from sysnoise.versions import library_version

DECODERS: Registry = Registry("decoder")

Target = Callable[[int, int], tuple[int, int]]  # (source width, height) -> size the pipeline resizes to


def probe(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) from the header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size[0], im.size[1], im.format or "unknown"
    except Image.DecompressionBombError as err:
        raise DecodeError(f"decompression bomb refused: {message(err)}") from None
    except Exception as err:  # Pillow raises many types for unreadable headers
        raise DecodeError(f"not a readable image ({type(err).__name__}: {message(err)})") from None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header, without decoding the pixels."""
    return probe(data)[:2]


def unavailable_reason(name: str) -> str | None:
    """Why a registered decoder cannot run here (its optional library is missing), or None."""
    entry = DECODERS.get(name)
    check = entry.meta.get("available")
    if check is None or check():
        return None
    return f"decoder {name!r} needs {entry.meta.get('install', entry.meta.get('library'))}"


def decode(name: str, data: bytes, max_pixels: int | None = None, target: Target | None = None) -> np.ndarray:
    """max_pixels: the pixel limit (default: pipeline.limits')."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    width, height = image_size(data)
    check_pixels(width, height, "image", max_pixels, DecodeError)
    truncated = truncation(data)
    if truncated:
        raise DecodeError(truncated)
    entry = DECODERS.get(name)
    reason = unavailable_reason(name)
    if reason:
        raise DecodeError(reason)
    if entry.meta.get("sized"):
        image = entry.fn(data, target(width, height) if target else (width, height))
    else:
        image = entry.fn(data)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = None if image is None else (image.shape, image.dtype)
        raise DecodeError(f"decoder {name!r} returned no RGB image (got {got})")
    allowed = {(height, width)} | ({(width, height)} if entry.meta.get("orientation") else set())
    if image.shape[:2] not in allowed and not (
        entry.meta.get("sized") and image.shape[0] <= height and image.shape[1] <= width
    ):
        raise DecodeError(f"decoder {name!r} returned {image.shape[1]}x{image.shape[0]}, header says {width}x{height}")
    return np.ascontiguousarray(image)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def pillow_rgb(im) -> np.ndarray:
    """The reference conversion of an opened Pillow image to HxWx3 uint8 RGB."""
    if im.mode.startswith("I"):  # 16-bit (or 32-bit integer) greyscale: keep the high byte
        grey = np.asarray(im).astype(np.int64) >> 8
        return _grey_to_rgb(np.clip(grey, 0, 255).astype(np.uint8))
    return np.asarray(im.convert("RGB"))


@DECODERS.register(
    "pillow",
    "Pillow (libjpeg-turbo), Image.convert('RGB'); the reference: no EXIF rotation, alpha dropped, 16-bit -> high byte",
    library="PIL",
)
def decode_pillow(data: bytes) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return pillow_rgb(im)
    except Exception as err:
        raise DecodeError(f"Pillow cannot decode: {type(err).__name__}: {message(err)}") from None


@DECODERS.register(
    "pillow-draft",
    "Pillow JPEG draft mode: DCT-domain downscale by 1/2, 1/4 or 1/8 to no less than "
    "the resize target, as fast loaders do",
    library="PIL",
    sized=True,
)
def decode_pillow_draft(data: bytes, target: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft(im.mode, target)  # picks the largest scale keeping both sides >= target
            return pillow_rgb(im)
    except Exception as err:
        raise DecodeError(f"Pillow cannot decode: {type(err).__name__}: {message(err)}") from None


@DECODERS.register(
    "opencv",
    "OpenCV cv2.imdecode(IMREAD_COLOR) -> RGB; applies EXIF rotation, CMYK off by one",
    library="cv2",
    orientation=True,
)
def decode_opencv(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:  # OpenCV reports failure (e.g. truncated data) by returning None
        raise DecodeError("OpenCV imdecode returned None (corrupt or unsupported data)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _torchvision_available() -> bool:
    # found, not imported: importing torchvision costs a run 1-3 s (results record every decoder's
    # availability, torchvision's included, whether a pipeline uses it or not)
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def _preflight_with_pillow(data: bytes) -> None:
    """torchvision's libpng path segfaults on some corrupt PNGs (found by tests/reliability's
    fuzz test: 'libpng error: IDAT: incorrect data check', then SIGSEGV; and 'Not enough image
    data', which Pillow fills in silently), which would kill the whole run. The PNG integrity
    check and a full Pillow decode first turn such files into a clean per-file error."""
    from PIL import Image

    problem = png_problem(data) if data.startswith(PNG_SIGNATURE) else None
    if problem:
        raise DecodeError(f"corrupt image, not handed to torchvision: {problem}")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception as err:
        raise DecodeError(f"corrupt image, not handed to torchvision: {type(err).__name__}: {message(err)}") from None


@DECODERS.register(
    "torchvision",
    "torchvision.io.decode_image(mode=RGB) (libjpeg-turbo, libpng); no EXIF rotation; 16-bit -> >>8",
    library="torchvision",
    available=_torchvision_available,
    install="torchvision.io.decode_image (deprecated in torchvision 0.29 for TorchCodec)",
)
def decode_torchvision(data: bytes) -> np.ndarray:
    import torch
    from torchvision.io import ImageReadMode, decode_image

    _preflight_with_pillow(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0.29 warns that image decoding moves to TorchCodec
        try:
            tensor = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError as err:
            raise DecodeError(f"torchvision cannot decode: {message(str(err).splitlines()[-1])}") from None
    if tensor.ndim != 3:  # an animated GIF comes back as (frames, 3, h, w)
        raise DecodeError(
            f"torchvision returned {tensor.ndim}-d frames {tuple(tensor.shape)} (an animated image), not one RGB image"
        )
    array = tensor.permute(1, 2, 0).numpy()
    if array.dtype == np.uint16:  # 16-bit PNG: torchvision's to_dtype(uint8, scale=True) shifts
        array = (array >> 8).astype(np.uint8)
    return array


def _ffmpeg(flags: tuple[str, ...]):
    def decode_ffmpeg(data: bytes) -> np.ndarray:
        import av
        from av.video.reformatter import Interpolation

        interpolation = 0
        for flag in flags:
            interpolation |= Interpolation[flag]
        try:
            with av.open(io.BytesIO(data), format="image2pipe") as container:
                stream = container.streams.video[0]
                if stream.codec_context is None:  # FFmpeg found the stream but has no decoder for it
                    raise DecodeError("FFmpeg has no decoder for this file's format")
                stream.codec_context.options = {"err_detect": "explode"}  # corrupt data: an error, not green
                frame = next(container.decode(stream))
                return frame.to_ndarray(format="rgb24", interpolation=interpolation)
        except (av.FFmpegError, StopIteration, IndexError, ValueError) as err:
            raise DecodeError(f"FFmpeg cannot decode: {type(err).__name__}: {message(err)}") from None

    return decode_ffmpeg


for _name, _flags, _text in [
    (
        "ffmpeg",
        ("BILINEAR",),
        "FFmpeg's own JPEG/PNG decoders + swscale to RGB, PyAV's default flags (bilinear); no fancy chroma upsampling",
    ),
    ("ffmpeg-bicubic", ("BICUBIC",), "as ffmpeg with swscale bicubic: bit-identical to the ffmpeg command line"),
    (
        "ffmpeg-accurate",
        ("BICUBIC", "FULL_CHR_H_INT", "ACCURATE_RND"),
        "as ffmpeg with swscale +full_chroma_int+accurate_rnd (the quality settings)",
    ),
]:
    DECODERS.register(_name, _text, library="av", swscale_flags=_flags)(_ffmpeg(_flags))


def _libjpeg(fastdct: bool, fastupsample: bool):
    def decode_libjpeg(data: bytes) -> np.ndarray:
        import simplejpeg

        if not simplejpeg.is_jpeg(data):
            return decode_pillow(data)  # a JPEG decoder's settings change nothing for other formats
        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=fastdct, fastupsample=fastupsample)
        except ValueError as err:
            raise DecodeError(f"libjpeg-turbo (simplejpeg) cannot decode: {message(err)}") from None

    return decode_libjpeg


for _name, _dct, _up, _text in [
    (
        "libjpeg-fast-idct",
        True,
        False,
        "libjpeg-turbo with the fast integer IDCT (JDCT_IFAST), as many hardware decoders",
    ),
    (
        "libjpeg-no-fancy-upsampling",
        False,
        True,
        "libjpeg-turbo with chroma replicated, not interpolated (do_fancy_upsampling=False), as many GPU decoders",
    ),
    ("libjpeg-fast", True, True, "libjpeg-turbo with fast IDCT and no fancy upsampling (both shortcuts)"),
]:
    DECODERS.register(_name, _text, library="simplejpeg", fastdct=_dct, fastupsample=_up)(_libjpeg(_dct, _up))


def _dali_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("nvidia.dali") is not None


_dali_pipe = (None, None)  # (process id, pipeline)


def _dali_pipeline():
    global _dali_pipe
    import os

    if _dali_pipe[0] not in (None, os.getpid()):
        # DALI's backend does not survive fork: a child of a process that already decoded with DALI
        # hangs building its own pipeline. Fail the sample clearly instead.
        raise DecodeError(
            "DALI was started in the parent process before it forked this worker; "
            "decode with DALI only in workers (or with --workers 0)"
        )
    if _dali_pipe[0] is None:
        import nvidia.dali.fn as fn
        import nvidia.dali.types as types
        from nvidia.dali import pipeline_def

        @pipeline_def(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
        def pipe():
            encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
            return fn.decoders.image(encoded, device="cpu", output_type=types.RGB)

        built = pipe()
        built.build()
        _dali_pipe = (os.getpid(), built)
    return _dali_pipe[1]


@DECODERS.register(
    "dali",
    "NVIDIA DALI fn.decoders.image on the CPU (device_id=None), applies EXIF rotation; optional: pip install "
    "sysnoise[dali]",
    library="nvidia.dali",
    available=_dali_available,
    orientation=True,
    install="NVIDIA DALI (pip install sysnoise[dali])",
)
def decode_dali(data: bytes) -> np.ndarray:
    pipe = _dali_pipeline()
    try:
        pipe.feed_input("encoded", [np.frombuffer(data, np.uint8)])
        (out,) = pipe.run()
    except Exception as err:  # DALI raises RuntimeError subclasses of its own
        raise DecodeError(f"DALI cannot decode: {type(err).__name__}: {message(str(err).splitlines()[0])}") from None
    return np.array(out.at(0))


def decoder_versions() -> dict[str, str]:
    """Each decoder's library and version (or why it is unavailable), for the results."""
    out = {}
    for entry in DECODERS:
        reason = unavailable_reason(entry.name)
        module = entry.meta.get("library", "")
        out[entry.name] = f"unavailable: {reason}" if reason else f"{module} {library_version(module)}"
    return out
