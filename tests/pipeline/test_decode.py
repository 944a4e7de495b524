"""Each decoder option equals a direct call of the library it names; the reference's edge-case
behaviour is the documented one; bad files give a clear DecodeError from every decoder."""

import io
import shutil
import subprocess
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from sysnoise.errors import DecodeError
from sysnoise.pipeline.decode import DECODERS, decode, decoder_versions, unavailable_reason

from . import images

AVAILABLE = [name for name in DECODERS.names() if unavailable_reason(name) is None]
needs_dali = pytest.mark.skipif(
    "dali" not in AVAILABLE, reason="NVIDIA DALI not installed (pip install sysnoise[dali])"
)


@pytest.fixture(scope="module")
def photo():
    return images.photo(61, 83)  # odd sizes: chroma planes have a half block at the edges


@pytest.fixture(scope="module")
def jpeg420(photo):
    return images.jpeg(photo, subsampling=2)


def pil_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def pyav(data: bytes, interpolation) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data), format="image2pipe") as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24", interpolation=interpolation)


def test_pillow_is_pillow(jpeg420):
    np.testing.assert_array_equal(decode("pillow", jpeg420), pil_rgb(jpeg420))


def test_opencv_is_imdecode(jpeg420):
    expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg420, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decode("opencv", jpeg420), expected)


def test_torchvision_is_decode_jpeg(jpeg420):
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = decode_jpeg(torch.frombuffer(bytearray(jpeg420), dtype=torch.uint8), mode=ImageReadMode.RGB)
    np.testing.assert_array_equal(decode("torchvision", jpeg420), expected.permute(1, 2, 0).numpy())


@pytest.mark.parametrize("name, flags", [("ffmpeg", "BILINEAR"), ("ffmpeg-bicubic", "BICUBIC")])
def test_ffmpeg_is_pyav_with_its_swscale_flags(jpeg420, name, flags):
    np.testing.assert_array_equal(decode(name, jpeg420), pyav(jpeg420, flags))


def test_ffmpeg_accurate_combines_flags(jpeg420):
    from av.video.reformatter import Interpolation as I

    expected = pyav(jpeg420, I.BICUBIC | I.FULL_CHR_H_INT | I.ACCURATE_RND)
    np.testing.assert_array_equal(decode("ffmpeg-accurate", jpeg420), expected)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg command line here")
def test_ffmpeg_bicubic_matches_the_ffmpeg_command_line(tmp_path, jpeg420):
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg420)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    got = decode("ffmpeg-bicubic", jpeg420)
    np.testing.assert_array_equal(got, np.frombuffer(raw, np.uint8).reshape(got.shape))


def test_ffmpeg_really_differs_from_libjpeg_on_420(jpeg420):
    diff = np.abs(decode("ffmpeg", jpeg420).astype(int) - decode("pillow", jpeg420))
    assert 3 <= diff.max() <= 80 and diff.mean() < 8  # chroma upsampling, not a broken decode


@pytest.mark.parametrize(
    "name, fastdct, fastupsample",
    [("libjpeg-fast-idct", True, False), ("libjpeg-no-fancy-upsampling", False, True), ("libjpeg-fast", True, True)],
)
def test_libjpeg_shortcuts_are_simplejpeg_flags(jpeg420, name, fastdct, fastupsample):
    import simplejpeg

    expected = simplejpeg.decode_jpeg(jpeg420, fastdct=fastdct, fastupsample=fastupsample)
    got = decode(name, jpeg420)
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, decode("pillow", jpeg420))  # each shortcut changes pixels


def test_libjpeg_with_default_flags_is_bit_identical_to_pillow(jpeg420):
    import simplejpeg

    np.testing.assert_array_equal(simplejpeg.decode_jpeg(jpeg420), decode("pillow", jpeg420))


def test_libjpeg_options_leave_png_to_the_reference(photo):
    png = images.encode(Image.fromarray(photo), "PNG")
    np.testing.assert_array_equal(decode("libjpeg-fast", png), photo)


@needs_dali
def test_dali_cpu_decoder_agrees_with_libjpeg_on_ordinary_jpeg(jpeg420):
    np.testing.assert_array_equal(decode("dali", jpeg420), decode("pillow", jpeg420))


def test_unavailable_decoder_is_listed_with_a_reason(monkeypatch):
    entry = DECODERS.get("dali")
    monkeypatch.setitem(entry.meta, "available", lambda: False)
    assert "pip install sysnoise[dali]" in unavailable_reason("dali")
    assert decoder_versions()["dali"].startswith("unavailable")
    with pytest.raises(DecodeError, match="needs NVIDIA DALI"):
        decode("dali", images.jpeg(images.photo()))


def test_decoder_versions_name_each_library():
    versions = decoder_versions()
    assert set(versions) == set(DECODERS.names())
    import PIL

    assert versions["pillow"] == f"PIL {PIL.__version__}"


def test_pillow_draft_scales_in_the_dct_domain():
    photo = images.photo(480, 640)
    data = images.jpeg(photo)
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (200, 150))
        expected = np.asarray(im.convert("RGB"))
    got = decode("pillow-draft", data, target=lambda w, h: (200, 150))
    assert got.shape == (240, 320, 3)  # 1/2: the largest scale that keeps both sides >= the target
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(decode("pillow-draft", data, target=lambda w, h: (400, 300)), decode("pillow", data))


# --- format edge cases: the reference (pillow) behaviour is explicit, the others are measured ---


def test_exif_orientation_is_not_applied_by_the_reference_but_by_opencv():
    photo = images.photo(48, 64)
    data = images.exif_rotated_jpeg(photo, orientation=6)  # 6: display rotated 90 degrees clockwise
    reference = decode("pillow", data)
    assert reference.shape == (48, 64, 3)
    rotated = decode("opencv", data)
    assert rotated.shape == (64, 48, 3)
    np.testing.assert_array_equal(rotated, np.rot90(reference, k=-1))
    assert decode("torchvision", data).shape == (48, 64, 3)
    assert decode("ffmpeg", data).shape == (48, 64, 3)
    if "dali" in AVAILABLE:
        np.testing.assert_array_equal(decode("dali", data), rotated)


def test_cmyk_jpeg_converted_by_pillow_others_off_by_one():
    data = images.cmyk_jpeg(images.photo())
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "CMYK"
        expected = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(decode("pillow", data), expected)
    opencv = decode("opencv", data).astype(int)
    assert 0 < np.abs(opencv - expected).max() <= 1  # OpenCV's CMYK->RGB rounds differently


def test_torchvision_unchanged_mode_returns_four_channels_for_cmyk_ours_three():
    import torch
    from torchvision.io import decode_image

    data = images.cmyk_jpeg(images.photo())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    assert raw.shape[0] == 4
    assert np.abs(decode("torchvision", data).astype(int) - decode("pillow", data)).max() <= 1


@pytest.mark.parametrize("name", AVAILABLE)
def test_ycck_jpeg_gives_rgb_close_to_the_reference(name):
    data = images.ycck_jpeg(images.photo())
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "CMYK" and im.info.get("adobe_transform") == 2
    diff = np.abs(decode(name, data).astype(int) - decode("pillow", data))
    assert diff.max() <= 16 and diff.mean() < 2


@pytest.mark.parametrize("name", AVAILABLE)
def test_grayscale_jpeg_is_replicated_to_three_equal_channels(name):
    data = images.encode(Image.fromarray(images.photo()).convert("L"), "JPEG", quality=90)
    got = decode(name, data)
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    with Image.open(io.BytesIO(data)) as im:
        grey = np.asarray(im)
    assert np.abs(got[..., 0].astype(int) - grey).max() <= (0 if name in ("pillow", "opencv", "torchvision") else 2)


def test_progressive_jpeg_identical_across_libjpeg_decoders():
    data = images.jpeg(images.photo(), progressive=True)
    with Image.open(io.BytesIO(data)) as im:
        assert im.info.get("progressive")
    reference = decode("pillow", data)
    for name in ("opencv", "torchvision") + (("dali",) if "dali" in AVAILABLE else ()):
        np.testing.assert_array_equal(decode(name, data), reference)
    assert decode("ffmpeg", data).shape == reference.shape  # FFmpeg decodes progressive too


@pytest.mark.parametrize("name", AVAILABLE)
def test_png_alpha_is_dropped_not_composited(name):
    rgba = np.dstack([images.photo(), np.linspace(0, 255, 64, dtype=np.uint8)[None, :].repeat(48, 0)])
    data = images.encode(Image.fromarray(rgba, "RGBA"), "PNG")
    np.testing.assert_array_equal(decode(name, data), rgba[..., :3])


def test_16bit_grey_png_keeps_the_high_byte_where_pillow_convert_would_clip():
    grey16 = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    data = images.encode(Image.fromarray(grey16), "PNG")
    expected = np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(decode("pillow", data), expected)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "I;16"
        assert (np.asarray(im.convert("RGB")) == 255).mean() > 0.9  # Pillow's own convert clips: not the reference
    np.testing.assert_array_equal(decode("opencv", data), expected)  # libpng strip_16
    np.testing.assert_array_equal(decode("torchvision", data), expected)
    assert np.abs(decode("ffmpeg", data).astype(int) - expected).max() <= 1  # swscale rounds instead


def test_16bit_rgb_png_keeps_the_high_byte():
    rgb16 = images.photo().astype(np.uint16) * 257 + 100
    path_data = cv2.imencode(".png", rgb16[..., ::-1])[1].tobytes()
    expected = (rgb16 >> 8).astype(np.uint8)
    for name in ("pillow", "opencv", "torchvision"):
        np.testing.assert_array_equal(decode(name, path_data), expected)


@pytest.mark.parametrize("name", AVAILABLE)
def test_palette_png_is_expanded(name):
    image = Image.fromarray(images.photo()).quantize(16)
    palette = np.asarray(image.getpalette()[: 16 * 3], np.uint8).reshape(16, 3)
    data = images.encode(image, "PNG")
    np.testing.assert_array_equal(decode(name, data), palette[np.asarray(image)])


# --- bad files: a clear per-file DecodeError from every decoder, never a crash or a silent image ---


def _bad_files():
    good = images.jpeg(images.photo())
    png = images.encode(Image.fromarray(images.photo()), "PNG")
    return {
        "zero bytes": (b"", "empty file"),
        "random bytes": (np.random.default_rng(1).bytes(900), "not a readable image"),
        "truncated jpeg": (good[: len(good) // 2], "truncated JPEG"),
        "jpeg without end marker": (good[:-2], "truncated JPEG"),
        "truncated png": (png[: len(png) // 2], "truncated PNG"),
        "unsupported format": (b"%PDF-1.4\n1 0 obj << >> endobj\n", "not a readable image"),
        "decompression bomb": (images.bomb_png(), "decompression bomb"),
    }


@pytest.mark.parametrize("name", AVAILABLE)
@pytest.mark.parametrize("case", sorted(_bad_files()))
def test_bad_file_gives_a_clear_error(name, case):
    data, message = _bad_files()[case]
    with pytest.raises(DecodeError, match=message):
        decode(name, data)


def test_pixel_limit_applies_to_every_decoder():
    data = images.jpeg(images.photo())
    for name in AVAILABLE:
        with pytest.raises(DecodeError, match="exceeds the limit"):
            decode(name, data, max_pixels=1000)


def test_the_libraries_really_misbehave_on_truncated_data():
    """Why decode() checks completeness itself: OpenCV returns None, FFmpeg a partly green image."""
    good = images.jpeg(images.photo(240, 320))
    cut = good[: len(good) // 2]
    assert cv2.imdecode(np.frombuffer(cut, np.uint8), cv2.IMREAD_COLOR) is None
    green = pyav(cut, "BILINEAR")
    assert green.shape == (240, 320, 3)
    assert (green[-40:] == (0, 135, 0)).all()  # the missing rows: YUV (0, 0, 0) in RGB


def test_ffmpeg_refuses_corrupt_scan_data_instead_of_returning_green():
    good = bytearray(images.jpeg(images.photo(240, 320)))
    middle = len(good) // 2
    good[middle : middle + 300] = np.random.default_rng(0).bytes(300)
    with pytest.raises(DecodeError, match="FFmpeg cannot decode"):
        decode("ffmpeg", bytes(good))


def _decode_outcome(name, data):
    try:
        return decode(name, data).shape
    except DecodeError as err:
        return str(err)


@needs_dali
def test_dali_in_a_worker_forked_after_the_parent_used_it_fails_clearly_instead_of_hanging(jpeg420):
    import multiprocessing

    decode("dali", jpeg420)  # the parent starts DALI first, as a test or `diff` in the main process would
    with multiprocessing.get_context("fork").Pool(1) as pool:
        outcome = pool.apply_async(_decode_outcome, ("dali", jpeg420)).get(timeout=120)
    assert "DALI was started in the parent process" in outcome
