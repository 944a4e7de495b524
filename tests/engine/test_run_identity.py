"""A results folder belongs to one run: its identity (model weights, data, reference, variants,
settings) is checked before any output is reused, resumed or replaced (issues 17 §3, 18 §4)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from sysnoise import api
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.identity import module_digest
from sysnoise.engine.outputs import RunOutputs
from sysnoise.errors import UserInputError
from sysnoise.models import wrap_module
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.classification import outputs_from_logits, read_dataset

REFERENCE = Pipeline(input_size=32)
BICUBIC = REFERENCE.replace(resize="pillow-bicubic")


class Constant(torch.nn.Module):
    """Logits that put class `winner` first whatever the input: a bias and a (zero) input weight."""

    def __init__(self, winner: int, classes: int = 4):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.nn.functional.one_hot(torch.tensor(winner), classes).float())
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None] * self.weight + self.bias


def pixels_model():
    """Logits that depend on every pixel, so a change of resize changes them."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)
    )


def options(chunk_size=256, workers=0):
    return EngineOptions(batch_size=1, chunk_size=chunk_size, workers=workers, progress=False)


def run(module, data, out, reference=REFERENCE, classes=4, **kwargs):
    return api.run(
        wrap_module(module, reference=reference, num_classes=classes),
        data,
        noises=[],
        out=out,
        figures=False,
        options=kwargs.pop("options", options()),
        **kwargs,
    )


def top1(out):
    return RunOutputs.load(out / "outputs.npz").arrays["reference"]["topk"][:, 0]


@pytest.fixture
def images(gradient_images):
    return gradient_images[0].parent


@pytest.fixture
def five_images(tmp_path):
    from tests.conftest import write_jpeg

    rng = np.random.default_rng(1)
    for i in range(5):
        write_jpeg(tmp_path / "five" / f"s{i}.jpg", rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8))
    return tmp_path / "five"


def test_module_digest_covers_weights_dtype_shape_and_class():
    a, b = Constant(0), Constant(1)
    assert module_digest(a) == module_digest(Constant(0))  # equal weights, separately built
    assert module_digest(a) != module_digest(b)
    assert module_digest(a) != module_digest(Constant(0).double())  # same values, another dtype
    assert module_digest(a) != module_digest(Constant(0, classes=5))

    class Renamed(Constant):
        pass

    assert module_digest(a) != module_digest(Renamed(0))
    bf16 = Constant(0).to(torch.bfloat16)  # no numpy dtype: hashed through its bytes
    assert module_digest(bf16) == module_digest(Constant(0).to(torch.bfloat16))


def test_two_modules_into_one_folder_refused_then_fresh_replaces(images, tmp_path):
    out = tmp_path / "run"
    run(Constant(0), images, out)
    assert (top1(out) == 0).all()

    with pytest.raises(UserInputError) as refused:
        run(Constant(1), images, out)
    message = str(refused.value)
    assert str(out) in message and "model weights differ" in message and "--fresh" in message
    assert (top1(out) == 0).all()  # the refusal touched nothing

    results = run(Constant(1), images, out, fresh=True)
    assert (top1(out) == 1).all()
    assert results["reference"]["n"] == 3
    stored = json.loads((out / "results.json").read_text())
    assert stored["run"]["identity"]["model"] != ""
    assert stored["run"]["reused"] is False


def test_same_module_asked_again_is_reused_not_recomputed(images, tmp_path):
    out = tmp_path / "run"
    first = run(pixels_model(), images, out, classes=3)
    before = (out / "outputs.npz").read_bytes(), (out / "outputs.npz").stat().st_mtime_ns
    counted = options()
    again = run(pixels_model(), images, out, classes=3, options=counted)  # an equal module, built anew
    assert again["run"]["reused"] is True and first["run"]["reused"] is False
    assert counted.forward_counter == {}  # nothing ran
    assert ((out / "outputs.npz").read_bytes(), (out / "outputs.npz").stat().st_mtime_ns) == before
    assert again["reference"] == first["reference"]
    assert again["run"]["identity"] == first["run"]["identity"]


def stop_at_first_chunk(monkeypatch):
    """The next run stops (as Ctrl-C would) before it commits any chunk."""
    from sysnoise.engine.store import ChunkStore

    def interrupted(self, span, arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(ChunkStore, "write", interrupted)


def test_reference_change_is_refused_and_a_fresh_interrupted_run_never_reports_the_old_numbers(
    images, tmp_path, monkeypatch
):
    out, direct = tmp_path / "run", tmp_path / "direct"
    run(pixels_model(), images, out, classes=3)  # bilinear, finished
    bilinear = RunOutputs.load(out / "outputs.npz").arrays["reference"]["prob"]

    with pytest.raises(UserInputError, match="reference pipeline differs: resize pillow-bilinear -> pillow-bicubic"):
        run(pixels_model(), images, out, reference=BICUBIC, classes=3)

    with monkeypatch.context() as patch:  # --fresh with bicubic, stopped before its first chunk
        stop_at_first_chunk(patch)
        with pytest.raises(KeyboardInterrupt):
            run(pixels_model(), images, out, reference=BICUBIC, classes=3, fresh=True)
    assert not (out / "outputs.npz").exists()  # --fresh removed the bilinear outputs before it stopped

    resumed = run(pixels_model(), images, out, reference=BICUBIC, classes=3)
    run(pixels_model(), images, direct, reference=BICUBIC, classes=3)
    bicubic = RunOutputs.load(out / "outputs.npz").arrays["reference"]["prob"]
    np.testing.assert_array_equal(bicubic, RunOutputs.load(direct / "outputs.npz").arrays["reference"]["prob"])
    assert not np.array_equal(bicubic, bilinear)
    assert resumed["run"]["reused"] is False


def test_an_interrupted_folder_without_outputs_takes_the_new_identity(images, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        stop_at_first_chunk(patch)
        with pytest.raises(KeyboardInterrupt):
            run(pixels_model(), images, out, classes=3)
    run(pixels_model(), images, out, reference=BICUBIC, classes=3)  # nothing there to mix: accepted
    assert json.loads((out / "run.json").read_text())["identity"]["details"]["reference"]["resize"] == "pillow-bicubic"


def expected_outputs(module, folder):
    """The reference column computed without the engine: the pipeline, then the module, per sample."""
    from sysnoise.pipeline.preprocess import tensors

    samples = read_dataset(folder).samples
    rows = []
    with torch.no_grad():
        for sample in samples:
            tensor = tensors(sample.path.read_bytes(), [REFERENCE])[REFERENCE.prefix("normalise")]
            rows.append(outputs_from_logits(module(torch.from_numpy(tensor)[None]))["prob"][0])
    return np.stack(rows)


def test_resume_with_another_chunk_size(five_images, tmp_path, monkeypatch):
    from sysnoise.engine.store import ChunkStore

    out = tmp_path / "run"
    original, written = ChunkStore.write, []

    def write_two_then_stop(self, span, arrays):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(span)
        original(self, span, arrays)

    with monkeypatch.context() as patch:
        patch.setattr(ChunkStore, "write", write_two_then_stop)
        with pytest.raises(KeyboardInterrupt):
            run(pixels_model(), five_images, out, classes=3, options=options(chunk_size=2))
    assert written == [(0, 2), (2, 4)]

    counted = options(chunk_size=3)
    run(pixels_model(), five_images, out, classes=3, options=counted)
    assert sum(counted.forward_counter.values()) == 1  # only sample 4 was left
    assert not list((out / "chunks").glob("*.npz"))  # merged, then dropped
    np.testing.assert_allclose(
        RunOutputs.load(out / "outputs.npz").arrays["reference"]["prob"],
        expected_outputs(pixels_model(), five_images),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_failed_merge_keeps_its_chunks(five_images, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(RunOutputs, "save", lambda self, path: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError, match="disk full"):
            run(pixels_model(), five_images, out, classes=3, options=options(chunk_size=2))
    assert sorted(p.name for p in (out / "chunks").glob("*.npz")) == [
        "000000000-000000002.npz",
        "000000002-000000004.npz",
        "000000004-000000005.npz",
    ]
    counted = options(chunk_size=4)
    run(pixels_model(), five_images, out, classes=3, options=counted)
    assert counted.forward_counter == {}  # everything came from the kept chunks
    np.testing.assert_allclose(
        RunOutputs.load(out / "outputs.npz").arrays["reference"]["prob"],
        expected_outputs(pixels_model(), five_images),
        rtol=1e-5,
        atol=1e-6,
    )


HOLD_LOCK = """
import sys, time
from sysnoise.engine.lock import FolderLock
FolderLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_run_into_a_locked_folder_is_refused(images, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserInputError) as refused:
            run(Constant(0), images, out)
        assert str(out) in str(refused.value) and f"process {holder.pid}" in str(refused.value)
        assert not (out / "run.json").exists()  # refused before touching the folder
    finally:
        holder.kill()
        holder.wait()
    run(Constant(0), images, out)  # the holder's exit released the lock
    assert (top1(out) == 0).all()


def test_cli_refuses_another_reference_in_the_folder_and_reports_reuse(gradient_images, tmp_path, capsys):
    from sysnoise import cli
    from sysnoise.models import load_model

    own = load_model("efficientnet_lite0").reference.resize
    other = "pillow-bicubic" if own != "pillow-bicubic" else "pillow-lanczos"
    (tmp_path / "ref.yaml").write_text(f"resize: {other}\n")
    argv = [
        "run",
        "--model",
        "efficientnet_lite0",
        "--data",
        str(gradient_images[0].parent),
        "--out",
        str(tmp_path / "out"),
        "--noise",
        "resize=pillow-nearest",
        "--workers",
        "0",
    ]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv + ["--reference", str(tmp_path / "ref.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"sysnoise: error: {tmp_path / 'out'}: ")
    assert f"reference pipeline differs: resize {own} -> {other}" in err and "--fresh" in err and "--out" in err
    assert cli.main(argv) == 0
    assert "reused this run's finished outputs" in capsys.readouterr().err


def test_chunks_still_to_compute_fill_the_gaps_of_any_earlier_chunk_size():
    from sysnoise.engine.execute import _spans_to_compute

    # 10 samples, chunks of 4 now; an earlier run (chunk size 3, then 1) left 0-3 and 5-6
    done = [(0, 3), (5, 6)]
    assert _spans_to_compute(10, 4, done, 0, 1) == [(3, 4), (4, 5), (6, 8), (8, 10)]
    # two ranks share the grid cells 0-4, 4-8, 8-10 round-robin; neither writes into the other's
    assert _spans_to_compute(10, 4, done, 0, 2) == [(3, 4), (8, 10)]
    assert _spans_to_compute(10, 4, done, 1, 2) == [(4, 5), (6, 8)]
    assert _spans_to_compute(10, 4, [(0, 10)], 0, 1) == []
    assert _spans_to_compute(0, 4, [], 0, 1) == []
