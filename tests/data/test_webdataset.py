"""WebDataset tar shards built here with tarfile: read by key, labels from .cls members, members
read in place within the limits, and a run end to end scored as a direct evaluation."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from sysnoise import api
from sysnoise.data.formats import read_bytes
from sysnoise.engine.execute import EngineOptions
from sysnoise.errors import SampleError, UserInputError
from sysnoise.tasks.classification import read_dataset

from .common import accuracy, direct_top1, images, tiny_model


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def write_shard(path, members: list[tuple[str, bytes]]):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _sample_members(key: str, array, label: int | None) -> list[tuple[str, bytes]]:
    members = [(f"{key}.png", _png(array))]
    return members + ([(f"{key}.cls", f"{label}\n".encode())] if label is not None else [])


def test_a_folder_of_shards_runs_end_to_end_scored_as_a_direct_evaluation(tmp_path):
    arrays = images(12)
    labels = [i % 3 for i in range(12)]
    for shard in range(2):  # 6 samples per shard, keys with dots after the first one ("a.b" -> key a)
        members = [
            m for i in range(shard * 6, shard * 6 + 6) for m in _sample_members(f"sample{i:03d}", arrays[i], labels[i])
        ]
        write_shard(tmp_path / "shards" / f"train-{shard:03d}.tar", members)
    dataset = read_dataset(tmp_path / "shards")
    assert dataset.kind == "webdataset" and not dataset.problems
    assert [s.id for s in dataset.samples] == [f"train-{i // 6:03d}.tar/sample{i:03d}" for i in range(12)]
    assert [s.labels for s in dataset.samples] == [(label,) for label in labels]
    model = tiny_model()
    results = api.run(
        model,
        tmp_path / "shards",
        out=tmp_path / "out",
        noises=["colour=matrix-601-as-709"],
        options=EngineOptions(progress=False, workers=1, batch_size=5),
    )
    expected = direct_top1(model, arrays)
    assert len(set(expected)) > 1  # a constant prediction would not tell samples apart
    stored = np.load(tmp_path / "out" / "outputs.npz")
    np.testing.assert_array_equal(stored["c0.topk"][:, 0], expected)
    np.testing.assert_array_equal(stored["labels"][:, 0], labels)
    assert results["reference"]["n"] == 12 and results["reference"]["top1"] == pytest.approx(accuracy(expected, labels))
    assert results["dataset"]["kind"] == "webdataset"
    assert results["figures"]["differences"]  # the report's pictures read the members too


def test_one_shard_with_an_unlabeled_sample_and_bad_members(tmp_path):
    arrays = images(4, seed=1)
    members = (
        _sample_members("a", arrays[0], 2)
        + _sample_members("dir/b", arrays[1], None)
        + [("c.png", _png(arrays[2])), ("c.cls", b"cat\n"), ("d.json", b"{}")]
        + _sample_members("e", arrays[3], 1)
        + [("e.jpg", _png(arrays[0]))]
    )
    shard = write_shard(tmp_path / "one.tar", members)
    dataset = read_dataset(shard)
    assert [(s.id, s.labels) for s in dataset.samples] == [
        ("one.tar/a", (2,)),
        ("one.tar/dir/b", ()),
        ("one.tar/e", (1,)),
    ]
    reasons = {p["id"]: p["reason"] for p in dataset.problems}
    assert "'cat' is not a class index" in reasons["one.tar/c"]
    assert "no image member (found .json)" in reasons["one.tar/d"]
    assert "2 image members; measured the first, e.png" in reasons["one.tar/e"]
    # the member's bytes are the PNG written, read in place
    assert read_bytes(dataset.samples[1].path) == _png(arrays[1])


def test_members_are_read_within_the_limits(tmp_path, monkeypatch):
    arrays = images(1)
    shard = write_shard(tmp_path / "s.tar", _sample_members("a", arrays[0], 0))
    path = read_dataset(shard).samples[0].path
    with pytest.raises(SampleError, match="no regular member 'b.png'"):
        read_bytes(f"{shard}#b.png")
    monkeypatch.setenv("SYSNOISE_MAX_FILE_MB", str(100 / 2**20))  # 100 bytes: less than the PNG
    with pytest.raises(SampleError, match="member of .* bytes exceeds the limit"):
        read_bytes(path)
    monkeypatch.delenv("SYSNOISE_MAX_FILE_MB")
    hashed = tmp_path / "s.tar#a.png"  # a real file whose name holds the mark is read as a file
    hashed.write_bytes(b"plain file")
    assert read_bytes(hashed) == b"plain file"


def test_compressed_and_broken_shards_are_user_errors(tmp_path):
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "a.tar.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(UserInputError, match="compressed shards .*a.tar.gz.* decompress"):
        read_dataset(tmp_path / "gz")
    (tmp_path / "broken.tar").write_bytes(b"\xff" * 1000)
    with pytest.raises(UserInputError, match="broken.tar: not a readable tar file"):
        read_dataset(tmp_path / "broken.tar")
