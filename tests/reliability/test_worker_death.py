"""A run's processes end with it (issue 18 s.3): after kill -9 of the main process its DataLoader
worker exits instead of being adopted by PID 1, and SIGTERM stops a run as Ctrl-C does (exit
143, the resume message, every committed chunk intact, no process left)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from tests.conftest import write_jpeg


def living(pgid: int) -> list[psutil.Process]:
    """The processes of process group `pgid` that still run (a zombie holds no memory: it only
    waits for its new parent to read its exit status)."""
    found = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


@pytest.fixture
def slow_run(tmp_path):
    """`sysnoise run` with one worker on 24 images and every resize option (about 20 forwards per
    image): long enough to be caught mid-run. Returns (process, its out folder) once the worker
    runs and a chunk is committed."""
    rng = np.random.default_rng(0)
    for i in range(24):
        write_jpeg(tmp_path / "data" / f"img{i:02d}.jpg", rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "sysnoise",
        "run",
        "--model",
        "efficientnet_lite0",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--noise",
        "resize",
        "--workers",
        "1",
        "--batch-size",
        "1",
        "--chunk-size",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )  # its own process group: pgid == pid
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if psutil.Process(process.pid).children() and list((out / "chunks").glob("*.npz")):
            break
        time.sleep(0.1)
    assert process.poll() is None and psutil.Process(process.pid).children(), "the run must be caught mid-run"
    yield process, out
    for left in living(process.pid):  # after a failure: an orphan would hold the pipes open forever
        left.kill()
    process.communicate(timeout=60)


def wait_until_gone(pgid: int, seconds: float) -> list[psutil.Process]:
    deadline = time.time() + seconds
    while living(pgid) and time.time() < deadline:
        time.sleep(0.1)
    return living(pgid)


def test_kill_9_of_the_main_process_leaves_no_worker(slow_run):
    process, _ = slow_run
    workers = psutil.Process(process.pid).children(recursive=True)
    os.kill(process.pid, signal.SIGKILL)  # the main process only, as the OOM killer would
    process.wait()
    assert not wait_until_gone(process.pid, 5.0), f"left running: {[w.pid for w in workers]}"


@pytest.mark.parametrize("group", [True, False], ids=["group", "main-only"])
def test_sigterm_stops_like_ctrl_c_with_chunks_intact(slow_run, group):
    process, out = slow_run
    if group:  # the whole group, as a service manager or a terminal does
        os.killpg(process.pid, signal.SIGTERM)
    else:  # `kill PID`: the workers are the run's to stop
        os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]  # 128 + SIGTERM, as the shell reports a terminated command
    assert "completed chunks are kept" in stderr and "Traceback" not in stderr, stderr[-2000:]
    chunks = sorted((out / "chunks").glob("*.npz"))
    assert chunks and not (out / "outputs.npz").exists()
    for chunk in chunks:  # each one whole: readable, one sample per chunk, the run's identity in it
        with np.load(chunk, allow_pickle=False) as arrays:
            assert arrays["c0.topk"].shape == (1, 5) and "__run__" in arrays.files
    assert not wait_until_gone(process.pid, 5.0)
