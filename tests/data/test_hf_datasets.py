"""Hugging Face `datasets` saved here (save_to_disk, parquet): columns found by their types,
labels read from the ClassLabel (or integer) column, rows read in place, a run end to end scored
as a direct evaluation, and the install line when `datasets` is missing."""

import io

import numpy as np
import pytest
from PIL import Image

from sysnoise import api, extras
from sysnoise.data.formats import read_bytes
from sysnoise.engine.execute import EngineOptions
from sysnoise.errors import SampleError, UserInputError
from sysnoise.tasks.classification import read_dataset

from .common import accuracy, direct_top1, images, tiny_model

datasets = pytest.importorskip("datasets", reason="pip install sysnoise[datasets]")


def _dataset(arrays, labels, label_feature=None, extra=None):
    features = {"image": datasets.Image(), "label": label_feature or datasets.ClassLabel(names=["a", "b", "c"])}
    columns = {"image": [Image.fromarray(a) for a in arrays], "label": labels}
    for name, (values, feature) in (extra or {}).items():
        columns[name], features[name] = values, feature
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def test_a_saved_dataset_runs_end_to_end_scored_as_a_direct_evaluation(tmp_path):
    arrays = images(12, seed=2)
    labels = [(i * 2) % 3 for i in range(12)]
    # the label column need not be called "label", nor come after the image: its type says what it is
    saved = _dataset(arrays, labels, extra={"caption": ([f"photo {i}" for i in range(12)], datasets.Value("string"))})
    saved.rename_column("label", "y").save_to_disk(str(tmp_path / "saved"))
    dataset = read_dataset(tmp_path / "saved")
    assert dataset.kind == "hf-datasets" and dataset.class_names == ["a", "b", "c"]
    assert [s.labels for s in dataset.samples] == [(label,) for label in labels]
    model = tiny_model()
    results = api.run(
        model,
        tmp_path / "saved",
        out=tmp_path / "out",
        noises=["colour=matrix-601-as-709"],
        options=EngineOptions(progress=False, workers=1, batch_size=5),
    )
    expected = direct_top1(model, arrays)
    assert len(set(expected)) > 1
    stored = np.load(tmp_path / "out" / "outputs.npz")
    np.testing.assert_array_equal(stored["c0.topk"][:, 0], expected)
    assert results["reference"]["n"] == 12 and results["reference"]["top1"] == pytest.approx(accuracy(expected, labels))
    assert results["figures"]["differences"]


def test_parquet_with_an_integer_label_column_and_unlabeled_rows(tmp_path):
    arrays = images(4, seed=3)
    table = _dataset(arrays, [2, -1, 0, 1], label_feature=datasets.Value("int64"))
    table.to_parquet(str(tmp_path / "data.parquet"))
    dataset = read_dataset(tmp_path / "data.parquet")
    assert [(s.id, s.labels) for s in dataset.samples] == [("0", (2,)), ("1", ()), ("2", (0,)), ("3", (1,))]
    assert dataset.class_names is None
    decoded = np.asarray(Image.open(io.BytesIO(read_bytes(dataset.samples[2].path))))
    np.testing.assert_array_equal(decoded, arrays[2])
    with pytest.raises(SampleError, match="no row '7'"):
        read_bytes(f"{tmp_path / 'data.parquet'}#7")


def test_columns_that_cannot_be_told_apart_and_split_folders_are_user_errors(tmp_path):
    arrays = images(2)
    two = _dataset(arrays, [0, 1], extra={"other": ([1, 0], datasets.ClassLabel(names=["x", "y"]))})
    two.save_to_disk(str(tmp_path / "two"))
    with pytest.raises(UserInputError, match=r"2 candidate label columns \(label, other\)"):
        read_dataset(tmp_path / "two")
    no_image = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    no_image.save_to_disk(str(tmp_path / "text"))
    with pytest.raises(UserInputError, match=r"0 image columns among text \(Value\), label \(Value\)"):
        read_dataset(tmp_path / "text")
    datasets.DatasetDict({"train": two, "test": two}).save_to_disk(str(tmp_path / "splits"))
    with pytest.raises(UserInputError, match="a dataset with splits .*train.*pass one split's folder"):
        read_dataset(tmp_path / "splits")


def test_without_datasets_the_run_says_how_to_install_it(tmp_path, monkeypatch):
    _dataset(images(2), [0, 1]).save_to_disk(str(tmp_path / "saved"))
    monkeypatch.setattr(extras, "available", lambda extra: extra != "datasets")
    with pytest.raises(UserInputError, match=r"needs datasets: pip install sysnoise\[datasets\]"):
        read_dataset(tmp_path / "saved")
