"""Scale-out and the input cache change nothing in the results."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from sysnoise.engine.cache import InputCache
from sysnoise.engine.outputs import RunOutputs
from sysnoise.pipeline.preprocess import tensors
from sysnoise.pipeline.spec import Pipeline

RUN = [
    "run",
    "--model",
    "efficientnet_lite0",
    "--batch-size",
    "2",
    "--chunk-size",
    "2",
    "--workers",
    "0",
    "--no-progress",
    "--noise",
    "resize=opencv-area",
    "--noise",
    "precision=bf16",
]


def test_two_gloo_processes_give_the_outputs_of_one(gradient_images, tmp_path):
    data = gradient_images[0].parent
    for extra in ([], ["--noise", "decoder=opencv"]):  # an odd and an even number of chunks per rank
        single, double = tmp_path / "single", tmp_path / "double"
        args = RUN + extra + ["--data", str(data)]
        # CPU kernels may sum in another order with another thread count: bit-identity holds for
        # equal threads per process, which results.json records (environment.torch_threads).
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(
            [sys.executable, "-m", "sysnoise", *args, "--out", str(single), "--fresh"],
            check=True,
            capture_output=True,
            env=env,
        )
        torchrun = Path(sys.executable).parent / "torchrun"
        done = subprocess.run(
            [
                str(torchrun),
                "--nproc-per-node",
                "2",
                "--master-port",
                "29531",
                "-m",
                "sysnoise",
                *args,
                "--out",
                str(double),
                "--fresh",
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        a, b = RunOutputs.load(single / "outputs.npz"), RunOutputs.load(double / "outputs.npz")
        assert a.column_ids == b.column_ids and a.sample_ids == b.sample_ids
        for column in a.column_ids:
            for name in a.arrays[column]:
                np.testing.assert_array_equal(a.arrays[column][name], b.arrays[column][name])
        ra, rb = (json.loads((d / "results.json").read_text()) for d in (single, double))
        assert ra["variants"] == rb["variants"] and ra["reference"] == rb["reference"]


def test_cache_returns_identical_arrays_and_misses_on_any_change(gradient_images, tmp_path):
    from sysnoise.tasks.classification import ClassificationTask, Sample

    task, cache = ClassificationTask(), InputCache(tmp_path / "cache")
    path = tmp_path / "img.jpg"
    shutil.copy(gradient_images[0], path)
    sample = Sample("img.jpg", path)
    a, b = Pipeline(input_size=32), Pipeline(input_size=32, resize="opencv-area")

    first = task.load_input(sample, [a], cache=cache)
    assert len(list(cache.folder.rglob("*.npy"))) == 1
    hit = task.load_input(sample, [a], cache=cache)
    np.testing.assert_array_equal(first[a.prefix("normalise")], hit[a.prefix("normalise")])

    calls = []
    original = task.inputs_from_bytes
    task.inputs_from_bytes = lambda data, pipelines, *rest: (
        calls.append(list(pipelines)) or original(data, pipelines, *rest)
    )
    both = task.load_input(sample, [a, b], cache=cache)
    assert calls == [[b]]  # only the new pipeline is computed
    np.testing.assert_array_equal(both[b.prefix("normalise")], tensors(path.read_bytes(), [b])[b.prefix("normalise")])

    shutil.copy(gradient_images[1], path)  # same name, new content: the hash changes, no stale hit
    calls.clear()
    changed = task.load_input(sample, [a], cache=cache)
    assert calls == [[a]]
    np.testing.assert_array_equal(
        changed[a.prefix("normalise")], tensors(path.read_bytes(), [a])[a.prefix("normalise")]
    )
