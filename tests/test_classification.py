import numpy as np
import pytest

from sysnoise.analysis.classification import correct
from sysnoise.errors import UserInputError
from sysnoise.tasks.classification import outputs_from_logits, read_dataset


def test_top1_and_top5_against_hand_made_outputs():
    topk = np.array([[3, 1, 2, 0, 4], [0, 1, 2, 3, 4], [9, 8, 7, 6, 5], [2, 0, 1, 3, 4]])
    labels = np.array([[3, -1], [4, -1], [1, 2], [0, 1]])  # row 3: a label set {0, 1}
    np.testing.assert_array_equal(correct(topk, labels, 1), [True, False, False, False])
    np.testing.assert_array_equal(correct(topk, labels, 5), [True, True, False, True])
    unlabeled = np.array([[-1, -1]])
    assert not correct(np.array([[0, 1, 2, 3, 4]]), unlabeled, 5)[0]


def test_outputs_keep_top5_in_order_and_pad_small_heads():
    import torch

    out = outputs_from_logits(torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0, 5.0]]))
    assert out["topk"].tolist() == [[5, 1, 3, 2, 0]]
    assert np.isclose(out["prob"].sum(), 1 - np.exp(-1) / np.exp([0, 3, 1, 2, -1, 5]).sum(), atol=1e-6)
    small = outputs_from_logits(torch.tensor([[1.0, 2.0]]))
    assert small["topk"].tolist() == [[1, 0, -1, -1, -1]]


def test_three_dataset_layouts(tmp_path, gradient_images):
    folder = gradient_images[0].parent
    unlabeled = read_dataset(folder)
    assert unlabeled.kind == "unlabeled" and unlabeled.n_labeled == 0 and len(unlabeled.samples) == 3

    tree = tmp_path / "tree"
    for i, src in enumerate(gradient_images):
        (tree / ("cat" if i else "ant")).mkdir(parents=True, exist_ok=True)
        (tree / ("cat" if i else "ant") / src.name).write_bytes(src.read_bytes())
    imagefolder = read_dataset(tree)
    assert imagefolder.kind == "imagefolder" and imagefolder.class_names == ["ant", "cat"]
    assert [s.labels for s in imagefolder.samples] == [(0,), (1,), (1,)]

    listing = folder / "val.txt"
    listing.write_text("img0.jpg 7\nimg1.jpg 3,4\n# comment\nimg2.jpg\nmissing.jpg 1\nimg0.jpg 2\n../escape.jpg 1\n")
    listed = read_dataset(listing)
    assert [(s.id, s.labels) for s in listed.samples] == [("img0.jpg", (7,)), ("img1.jpg", (3, 4)), ("img2.jpg", ())]
    reasons = {p["id"]: p["reason"] for p in listed.problems}
    assert reasons["missing.jpg"] == "file not found"
    assert "duplicate" in reasons["img0.jpg"]
    assert "escapes" in reasons["../escape.jpg"]
    assert all("val.txt:" in p["where"] for p in listed.problems)


def test_empty_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="no images found"):
        read_dataset(tmp_path)
    with pytest.raises(UserInputError, match="not found"):
        read_dataset(tmp_path / "nope")


def test_forward_batches_inputs_of_different_sizes_apart_and_keeps_their_order():
    # a deployment pipeline may change input_size beside the reference's: one model stage, two sizes
    import numpy as np
    import torch

    from sysnoise.tasks.classification import ClassificationTask, outputs_from_logits

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 7)
    ).eval()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((3, s, s)).astype(np.float32) for s in (32, 24, 32, 24, 24)]
    with torch.no_grad():
        got = ClassificationTask().forward(model, inputs, 2, "cpu")
        one_by_one = [outputs_from_logits(model(torch.from_numpy(x)[None])) for x in inputs]
    assert np.array_equal(got["topk"], np.concatenate([o["topk"] for o in one_by_one]))
    assert np.allclose(got["prob"], np.concatenate([o["prob"] for o in one_by_one]), atol=1e-6)
