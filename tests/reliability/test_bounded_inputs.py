"""Issue 18: hostile and awkward files cost one skipped sample with a reason, never the run's
memory or time; corrupt data is counted apart from decoder noise; records are deterministic."""

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import cv2
import numpy as np
import pytest
import simplejpeg
import torch
from PIL import Image

from sysnoise import api
from sysnoise.cli import main
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.outputs import RunOutputs
from sysnoise.errors import SampleError, UserInputError
from sysnoise.models import wrap_module
from sysnoise.pipeline import colour, integrity, limits, yuv
from sysnoise.pipeline import decode as decode_module
from sysnoise.pipeline.colour import COLOURS
from sysnoise.pipeline.decode import decode
from sysnoise.pipeline.preprocess import Memo, stage_values
from sysnoise.pipeline.spec import Pipeline
from sysnoise.registry import Entry
from tests.reliability import corpus

REFERENCE = Pipeline(input_size=32, crop_pct=0.875)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)
    )


def _clean_environment() -> dict:
    """A probe's environment: the machine's basics and the checkout under test, none of the
    variables earlier tests left in this process (a memory figure must not depend on test order)."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "SYSNOISE_CACHE")}
    return {**keep, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "src")])}


def run_script(body: str, timeout: float = 120) -> dict:
    """Run Python in a fresh process (memory figures of its own); its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=_clean_environment(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- memory stays bounded


def test_a_failure_keeps_its_text_not_the_decoders_buffer():
    """Pillow writes most of a 4000x4000 image, then raises: the exception's traceback holds the
    image. Held raw (the control), each failure keeps tens of MB; the memo keeps only text."""
    figures = run_script("""
        import gc, json
        from sysnoise.pipeline.decode import decode
        from sysnoise.pipeline.preprocess import tensors
        from sysnoise.pipeline.spec import Pipeline
        from tests.reliability import corpus

        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

        data = corpus.broken_stream_png()
        decoders = ["pillow", "pillow-draft", "libjpeg-fast", "libjpeg-fast-idct",
                    "libjpeg-no-fancy-upsampling"]  # all decode a PNG with Pillow
        tensors(corpus.jpeg_bytes(), [Pipeline(decoder=name) for name in decoders])  # libraries loaded first
        gc.collect(); before = rss()
        out = tensors(data, [Pipeline(decoder=name) for name in decoders])
        gc.collect(); kept = rss() - before
        errors = list(out.values())
        held = []
        for name in decoders:  # the control: the exceptions themselves, as raised
            try:
                decode(name, data)
            except Exception as err:
                held.append(err)
        gc.collect(); raw = rss() - before - kept
        print(json.dumps({"kept_mb": kept, "raw_mb": raw, "types": [type(e).__name__ for e in errors],
                          "traceback": [e.__traceback__ is not None or e.__context__ is not None for e in errors],
                          "messages": [str(e) for e in errors]}))
    """)
    assert figures["raw_mb"] > 100  # what keeping the exceptions costs: the test can fail
    assert figures["kept_mb"] < 20, figures
    assert set(figures["types"]) == {"SampleError"} and not any(figures["traceback"])
    assert all("broken data stream" in m for m in figures["messages"])


def test_stored_failures_are_fresh_text_only_errors():
    memo = Memo()
    values = stage_values(corpus.broken_stream_png(side=64, missing_rows=4), Pipeline(), memo)
    for stage in ("decode", "colour", "geometry", "normalise"):
        error = values[stage]
        assert isinstance(error, SampleError) and error.__traceback__ is None and error.__context__ is None
        assert error.args == (str(error),) and "broken data stream" in str(error)


def test_a_tall_png_is_refused_at_the_resize_with_bounded_memory():
    data = corpus.tall_png()
    assert len(data) < 300 and decode("pillow", data).shape == (60_000, 1, 3)
    values = stage_values(data, Pipeline())
    # shorter side 1 -> floor(224 / 0.875) = 256, longer side int(256 * 60000 / 1)
    assert str(values["geometry"]) == (
        f"resize target of 256x{256 * 60_000} pixels exceeds the limit of 89478485 (SYSNOISE_MAX_PIXELS)"
    )
    figures = run_script("""
        import json
        from sysnoise.pipeline.preprocess import tensors
        from sysnoise.pipeline.resize import RESIZES
        from sysnoise.pipeline.geometry import CROPS
        from sysnoise.pipeline.spec import Pipeline
        from tests.reliability import corpus

        pipelines = [Pipeline(resize=r, crop=c) for r in RESIZES.names() for c in CROPS.names()]
        tensors(corpus.jpeg_bytes(), pipelines)  # every library loaded
        def peak_mb():  # VmHWM: the peak resident size since the last reset
            line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
            return int(line.split()[1]) / 1024
        loaded = int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
        open("/proc/self/clear_refs", "w").write("5")  # the peak from here on: the tall PNG's alone
        out = tensors(corpus.tall_png(), pipelines)
        print(json.dumps({"loaded_mb": loaded, "peak_mb": peak_mb(),
                          "reasons": sorted({str(v) for v in out.values() if not hasattr(v, "shape")})}))
    """)
    assert figures["peak_mb"] - figures["loaded_mb"] < 200, figures  # the refused resize alone: 11.8 GB
    assert any(r.startswith("resize target of 256x15360000") for r in figures["reasons"])


def test_a_crop_larger_than_the_limit_is_refused(monkeypatch):
    monkeypatch.setenv("SYSNOISE_MAX_PIXELS", str(100 * 100))
    buffer = io.BytesIO()
    Image.fromarray(corpus.photo(0, (80, 60))).save(buffer, "PNG")
    # letterbox: the 60x80 image resized to 76x101 (7676 pixels, allowed), padded to 101x101 (10201)
    values = stage_values(buffer.getvalue(), Pipeline(crop="letterbox", input_size=101))
    assert str(values["geometry"]) == "crop of 101x101 pixels exceeds the limit of 10000 (SYSNOISE_MAX_PIXELS)"


def test_colour_conversions_run_tile_by_tile_with_the_whole_image_result(monkeypatch):
    image = corpus.photo(5, (37, 51))
    expected = {  # the YUV maths on the whole image
        "nv12-int": yuv.yuv_to_rgb_int(yuv.chroma_420(yuv.rgb_to_yuv_int(image), "average", "nearest")),
        "nv12-int-bilinear": yuv.yuv_to_rgb_int(yuv.chroma_420(yuv.rgb_to_yuv_int(image), "average", "bilinear")),
        "nv12-float": yuv.yuv_to_rgb_paper_float(yuv.chroma_420(yuv.rgb_to_yuv_paper_float(image))),
        "nv12-int-topleft": yuv.yuv_to_rgb_int(yuv.chroma_420(yuv.rgb_to_yuv_int(image), "topleft")),
        "yuv444-int": yuv.yuv_to_rgb_int(yuv.rgb_to_yuv_int(image)),
        "range-full-as-limited": yuv.yuv_to_rgb_float(yuv.rgb_to_yuv_float(image, full_range=True)),
        "matrix-601-as-709": yuv.yuv_to_rgb_float(yuv.rgb_to_yuv_float(image, "bt601"), "bt709"),
    }
    monkeypatch.setattr(colour, "TILE", 6)  # 7 x 9 tiles, odd edges
    for name, whole in expected.items():
        np.testing.assert_array_equal(COLOURS(name)(image), whole, err_msg=name)


def test_input_size_beyond_the_limit_is_refused_before_work(tmp_path, capsys):
    with pytest.raises(ValueError, match=f"input_size: 20000 exceeds the limit of {limits.MAX_INPUT_SIZE}"):
        Pipeline(input_size=20000)
    reference = tmp_path / "train.yaml"
    reference.write_text("input_size: 20000\n")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(corpus.jpeg_bytes())
    started = time.perf_counter()
    code = main(
        [
            "run",
            "--model",
            "efficientnet_lite0",
            "--data",
            str(tmp_path / "imgs"),
            "--reference",
            str(reference),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    assert code == 2 and time.perf_counter() - started < 30
    assert f"input_size: 20000 exceeds the limit of {limits.MAX_INPUT_SIZE}" in capsys.readouterr().err


def test_only_regular_files_within_the_size_limit_are_read(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "pipe.jpg")
    os.symlink("/dev/zero", tmp_path / "zero.jpg")
    (tmp_path / "big.jpg").write_bytes(bytes(30_000))
    (tmp_path / "dir.jpg").mkdir()
    monkeypatch.setenv("SYSNOISE_MAX_FILE_MB", str(20_000 / 2**20))
    reasons = {}
    started = time.perf_counter()
    for name in ("pipe.jpg", "zero.jpg", "big.jpg", "dir.jpg"):
        with pytest.raises(SampleError) as caught:
            limits.read_file(tmp_path / name)
        reasons[name] = str(caught.value)
    assert time.perf_counter() - started < 1
    assert reasons == {
        "pipe.jpg": "not a regular file (a named pipe): only regular files are read",
        "zero.jpg": "not a regular file (a character device): only regular files are read",
        "big.jpg": "file of 30000 bytes exceeds the limit of 20000 (SYSNOISE_MAX_FILE_MB)",
        "dir.jpg": "not a regular file (a directory): only regular files are read",
    }
    (tmp_path / "small.jpg").write_bytes(b"abc")
    assert limits.read_file(tmp_path / "small.jpg") == b"abc"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("SYSNOISE_SAMPLE_SECONDS", "soon"),
        ("SYSNOISE_MAX_FILE_MB", "inf"),
        ("SYSNOISE_MAX_PIXELS", "nan"),
        ("SYSNOISE_MAX_PIXELS", "0"),
    ],
)
def test_a_bad_limit_setting_is_a_user_error(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserInputError, match=f"{variable}='{value}': expected a positive number"):
        limits.current()


def test_the_time_budget_interrupts_code_that_swallows_exceptions(monkeypatch):
    monkeypatch.setenv("SYSNOISE_SAMPLE_SECONDS", "0.2")
    started = time.perf_counter()
    with pytest.raises(limits.OverBudget, match="longer than the budget of 0.2 s"):
        with limits.time_budget():
            for _ in range(100):
                try:
                    time.sleep(0.05)
                except Exception:  # a library's broad handler does not end the budget
                    pass
    assert time.perf_counter() - started < 1
    with limits.time_budget():  # within the budget: nothing happens, and the alarm is off after
        time.sleep(0.01)
    time.sleep(0.3)


def test_outside_the_main_thread_there_is_no_budget(monkeypatch):
    monkeypatch.setenv("SYSNOISE_SAMPLE_SECONDS", "0.05")
    seen = []

    def work():
        seen.append(limits.budget_available())
        with limits.time_budget():
            time.sleep(0.1)
        seen.append("finished")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [False, "finished"]


# ---------------------------------------------------------------- corrupt data


def test_the_libraries_disagree_on_corrupt_jpegs_and_the_preflight_sees_it():
    """The issue's finding, checked on the libraries directly: Pillow, OpenCV and torchvision
    return pixels for these files, strict libjpeg refuses them; the pre-flight names them."""
    from torchvision.io import decode_jpeg

    clean = corpus.jpeg_bytes()
    for data in (corpus.truncated_then_eoi(clean), corpus.bit_flipped(clean)):
        Image.open(io.BytesIO(data)).convert("RGB")  # no error
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
        decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        with pytest.raises(ValueError, match="Corrupt JPEG data"):
            simplejpeg.decode_jpeg(data)
        with pytest.raises(SampleError, match="^corrupt data: Corrupt JPEG data"):
            integrity.check_intact(data)
    integrity.check_intact(clean)


def test_only_libjpegs_corrupt_data_warnings_mark_a_jpeg_corrupt():
    clean = corpus.jpeg_bytes()
    jfif, tables = clean.find(b"JFIF\x00"), clean.find(b"\xff\xdb")
    junk = clean[:tables] + b"\x00" * 3 + clean[tables:]  # garbage before a marker: a header-time warning
    revision = clean[: jfif + 5] + b"\x02" + clean[jfif + 6 :]  # JFIF 2.01: a warning about nothing damaged
    for data in (junk, revision):
        Image.open(io.BytesIO(data)).convert("RGB")  # Pillow decodes both
        with pytest.raises(ValueError):  # strict libjpeg refuses both
            simplejpeg.decode_jpeg(data)
    assert integrity.jpeg_problem(junk) == "Corrupt JPEG data: 3 extraneous bytes before marker 0xdb"
    assert integrity.jpeg_problem(revision) is None


def test_png_integrity_checks_crcs_and_the_amount_of_image_data():
    png = io.BytesIO()
    Image.fromarray(corpus.photo(4)).save(png, "PNG")
    integrity.check_intact(png.getvalue())
    flipped = corpus.png_idat_flipped()
    with pytest.raises(SampleError, match="PNG chunk 'IDAT' at byte 33 fails its CRC check"):
        integrity.check_intact(flipped)
    # Interlaced PNGs written pass by pass: Pillow and OpenCV read them back exactly; one row short,
    # libpng refuses and so does the check.
    rng = np.random.default_rng(0)
    for height, width in [(1, 1), (3, 5), (9, 17), (33, 64)]:
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        whole, short = corpus.adam7_png(image), corpus.adam7_png(image, drop_last_row=True)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(whole)).convert("RGB")), image)
        assert integrity.png_problem(whole) is None
        assert cv2.imdecode(np.frombuffer(short, np.uint8), cv2.IMREAD_COLOR) is None
        assert "PNG image data holds" in integrity.png_problem(short)


def test_torchvision_never_sees_a_png_short_of_image_data():
    """libpng's 'Not enough image data' crashes torchvision's decoder (SIGSEGV); Pillow accepts it."""
    data = corpus.huge_truncated_png(side=500)
    assert decode("pillow", data).shape == (500, 500, 3)
    with pytest.raises(SampleError, match="not handed to torchvision: PNG image data holds 1501 of the 750500"):
        decode("torchvision", data)


# ---------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory):
    """Good images beside every hostile kind, as one unlabeled folder."""
    folder = tmp_path_factory.mktemp("hostile") / "data"
    folder.mkdir()
    for i in range(3):
        (folder / f"good{i}.jpg").write_bytes(corpus.jpeg_bytes(seed=i))
    clean = corpus.jpeg_bytes()  # the flips of test_the_libraries_disagree_on_corrupt_jpegs...
    (folder / "trunc_eoi.jpg").write_bytes(corpus.truncated_then_eoi(clean))
    (folder / "flipped.jpg").write_bytes(corpus.bit_flipped(clean))
    (folder / "short.png").write_bytes(corpus.huge_truncated_png(side=40))  # Pillow fills, FFmpeg refuses
    (folder / "random.jpg").write_bytes(np.random.default_rng(1).bytes(700))  # Pillow names an address
    (folder / "tall.png").write_bytes(corpus.tall_png())
    (folder / "big.png").write_bytes(np.random.default_rng(2).bytes(60_000))
    os.mkfifo(folder / "pipe.jpg")
    os.symlink("/dev/zero", folder / "zero.jpg")
    return folder


CORRUPT = {"trunc_eoi.jpg", "flipped.jpg", "short.png"}


def hostile_run(folder, out, monkeypatch, workers=1, include_corrupt=False):
    monkeypatch.setenv("SYSNOISE_MAX_FILE_MB", str(50_000 / 2**20))
    monkeypatch.setenv("SYSNOISE_MAX_PIXELS", "10000000")
    options = EngineOptions(batch_size=4, workers=workers, progress=False, include_corrupt=include_corrupt)
    return api.run(
        wrap_module(tiny_model(), reference=REFERENCE),
        folder,
        noises=["decoder=ffmpeg,opencv"],
        out=out,
        options=options,
        figures=False,
    )


def test_hostile_files_are_skipped_with_reasons_and_corrupt_ones_counted_apart(hostile_folder, tmp_path, monkeypatch):
    started = time.perf_counter()
    results = hostile_run(hostile_folder, tmp_path / "a", monkeypatch)
    assert time.perf_counter() - started < 120  # no hang on the pipe, no endless read of /dev/zero
    skipped = {s["id"]: s["reason"] for s in results["skipped"]}
    assert skipped["pipe.jpg"] == "not a regular file (a named pipe): only regular files are read"
    assert skipped["zero.jpg"] == "not a regular file (a character device): only regular files are read"
    assert skipped["big.png"] == "file of 60000 bytes exceeds the limit of 50000 (SYSNOISE_MAX_FILE_MB)"
    # floor(32 / 0.875) = 36, and int(36 * 60000 / 1)
    assert (
        skipped["tall.png"] == "resize target of 36x2160000 pixels exceeds the limit of 10000000 (SYSNOISE_MAX_PIXELS)"
    )
    assert skipped["random.jpg"].startswith("not a readable image (UnidentifiedImageError")
    assert {name for name, reason in skipped.items() if reason.startswith("corrupt data: ")} == CORRUPT
    assert results["dataset"]["n_corrupt"] == 3 and results["dataset"]["include_corrupt"] is False
    assert results["reference"]["n"] == 3  # the good images only
    assert results["variant_failures"] == {}  # FFmpeg refuses nothing that is measured
    assert results["run"]["limits"]["max_file_bytes"] == 50_000


def test_corrupt_samples_are_measured_with_the_option(hostile_folder, tmp_path, monkeypatch):
    results = hostile_run(hostile_folder, tmp_path / "b", monkeypatch, workers=0, include_corrupt=True)
    assert results["dataset"]["n_corrupt"] is None and results["dataset"]["include_corrupt"] is True
    assert results["run"]["include_corrupt"] is True
    skipped = {s["id"] for s in results["skipped"]}
    assert not skipped & CORRUPT
    assert results["reference"]["n"] == 3 + len(CORRUPT)
    ffmpeg = next(v for v in results["variant_failures"] if "ffmpeg" in v)
    # FFmpeg refuses the corrupt files Pillow decoded: what used to count as decoder noise
    assert {f["id"] for f in results["variant_failures"][ffmpeg]} == CORRUPT


def test_two_identical_runs_record_identical_errors(hostile_folder, tmp_path, monkeypatch):
    for name in ("one", "two"):
        hostile_run(hostile_folder, tmp_path / name, monkeypatch, workers=0)
    first, second = (RunOutputs.load(tmp_path / name / "outputs.npz") for name in ("one", "two"))
    assert first.column_ids == second.column_ids
    for column in first.column_ids:
        np.testing.assert_array_equal(first.errors[column], second.errors[column])
        assert not any(" at 0x" in error for error in first.errors[column])
    reasons = [json.loads((tmp_path / name / "results.json").read_text())["skipped"] for name in ("one", "two")]
    assert reasons[0] == reasons[1]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_sample_over_the_time_budget_is_skipped(gradient_images, tmp_path, monkeypatch, workers):
    slow_size = gradient_images[1].stat().st_size
    entry = decode_module.DECODERS.get("opencv")

    def stalls_on_one_file(data):
        if len(data) == slow_size:
            time.sleep(60)
        return entry.fn(data)

    monkeypatch.setitem(
        decode_module.DECODERS._entries, "opencv", Entry("opencv", stalls_on_one_file, entry.description, entry.meta)
    )
    monkeypatch.setenv("SYSNOISE_SAMPLE_SECONDS", "2")
    started = time.perf_counter()
    results = api.run(
        wrap_module(tiny_model(), reference=REFERENCE),
        gradient_images[0].parent,
        noises=["decoder=opencv"],
        out=tmp_path / "run",
        figures=False,
        options=EngineOptions(batch_size=2, workers=workers, progress=False),
    )
    assert time.perf_counter() - started < 50
    skipped = {s["id"]: s["reason"] for s in results["skipped"]}
    assert skipped == {
        gradient_images[1].name: "pre-processing took longer than the budget of 2 s (SYSNOISE_SAMPLE_SECONDS)"
    }
    assert results["reference"]["n"] == 2


def test_include_corrupt_is_refused_for_text(tmp_path, capsys):
    code = main(
        [
            "run",
            "--model",
            "smollm2-135m",
            "--task",
            "language",
            "--data",
            str(tmp_path / "items.jsonl"),
            "--include-corrupt",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2 and "--include-corrupt is for image tasks" in capsys.readouterr().err
