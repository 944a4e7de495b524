"""A run killed with SIGKILL resumes from its committed chunks and ends identical to an
uninterrupted run; two runs of one command give identical outputs and results."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from sysnoise.engine.outputs import RunOutputs

NOISES = ["--noise", "resize=opencv-bilinear,pillow-nearest", "--noise", "precision=fp16"]


def command(data, out, *extra):
    return [
        sys.executable,
        "-m",
        "sysnoise",
        "run",
        "--model",
        "efficientnet_lite0",
        "--data",
        str(data),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--chunk-size",
        "2",
        "--workers",
        "0",
        "--no-progress",
        *NOISES,
        *extra,
    ]


def without_volatile(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in ("created", "run")}


def assert_same_outputs(a_dir, b_dir):
    a, b = RunOutputs.load(a_dir / "outputs.npz"), RunOutputs.load(b_dir / "outputs.npz")
    assert a.column_ids == b.column_ids and a.sample_ids == b.sample_ids
    for column in a.column_ids:
        np.testing.assert_array_equal(a.errors[column], b.errors[column])
        for name in a.arrays[column]:
            np.testing.assert_array_equal(a.arrays[column][name], b.arrays[column][name])
    ra = json.loads((a_dir / "results.json").read_text())
    rb = json.loads((b_dir / "results.json").read_text())
    assert without_volatile(ra) == without_volatile(rb)


def test_sigkill_then_resume_equals_uninterrupted(demo_list_file, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    photos = [line for line in demo_list_file.read_text().splitlines() if not line.startswith("#")][:16]
    subset = demo_list_file.parent / "resume-subset.txt"  # 8 chunks of 2: enough to kill mid-run, cheap
    subset.write_text("\n".join(photos) + "\n")
    demo_list_file = subset
    whole = tmp_path / "whole"
    subprocess.run(command(demo_list_file, whole), check=True, env=env, capture_output=True)

    cut = tmp_path / "cut"
    process = subprocess.Popen(
        command(demo_list_file, cut),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list((cut / "chunks").glob("*.npz"))) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the whole process group, workers included
    process.wait()
    committed = len(list((cut / "chunks").glob("*.npz")))
    assert committed >= 3 and not (cut / "results.json").exists(), "the kill must land mid-run"

    resumed = subprocess.run(command(demo_list_file, cut), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_outputs(whole, cut)


def test_two_runs_of_one_command_are_identical(gradient_images, tmp_path):
    data = gradient_images[0].parent
    for name in ("a", "b"):
        done = subprocess.run(command(data, tmp_path / name), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert_same_outputs(tmp_path / "a", tmp_path / "b")
