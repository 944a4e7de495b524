"""`sysnoise run --task segmentation` with torchvision segmenters by name on hand-made label maps:
the ignore index is the user's, and the ONNX runtimes run a segmenter like torch does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from sysnoise.cli import main

ARCH = "lraspp_mobilenet_v3_large"


def _dataset(folder, label_maps):
    """One random RGB image per label map, of the label map's size, and the list file."""
    rng = np.random.default_rng(0)
    lines = []
    for i, labels in enumerate(label_maps):
        Image.fromarray(rng.integers(0, 256, (*labels.shape, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        Image.fromarray(labels.astype(np.uint8), mode="L").save(folder / f"{i}-labels.png")
        lines.append(f"{i}.png {i}-labels.png")
    (folder / "segmentation.txt").write_text("\n".join(lines) + "\n")
    return folder / "segmentation.txt"


def _weights(path, constant_class: int | None = None):
    """A random LRASPP with 3 classes; with constant_class, both classifiers' weights are zero and
    their biases make that class win everywhere (the logits are the summed biases)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = torchvision.models.get_model(ARCH, weights=None, weights_backbone=None, num_classes=3)
    if constant_class is not None:
        with torch.no_grad():
            for head in (model.classifier.low_classifier, model.classifier.high_classifier):
                head.weight.zero_()
                head.bias.zero_()
            model.classifier.low_classifier.bias[constant_class] = 1.0
    save_file(model.state_dict(), str(path))
    return path


def _run(tmp_path, data, weights, *extra):
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    argv = [
        "run",
        "--task",
        "segmentation",
        "--model",
        f"torchvision:{ARCH}",
        "--weights",
        str(weights),
        "--data",
        str(data),
        "--workers",
        "0",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def test_ignore_index_from_the_command_line(tmp_path):
    # rows 1 1 1 1 / 1 1 1 1 / 2 2 2 2 / 0 0 0 0; the model predicts class 1 everywhere.
    # --ignore-index 0: class 1 IoU 8 / (8 + 4 false positives) = 2/3, class 2 IoU 0, class 0 left
    #   out (neither labeled nor predicted on a counted pixel): mIoU 1/3; pixel accuracy 8 / 12
    # default 255: class 0 counts too (IoU 0), class 1 IoU 8 / 16: mIoU 1/6; pixel accuracy 8 / 16
    labels = np.array([[1] * 4, [1] * 4, [2] * 4, [0] * 4])
    data = _dataset(tmp_path, [labels])
    weights = _weights(tmp_path / "constant.safetensors", constant_class=1)
    given = _run(tmp_path, data, weights, "--noise", "mask-resize=labels-nearest", "--ignore-index", "0")
    assert given["dataset"]["ignore_index"] == 0
    assert given["reference"]["miou"] == pytest.approx(100 / 3)
    assert given["reference"]["pixel_accuracy"] == pytest.approx(100 * 8 / 12)
    default = _run(tmp_path, data, weights, "--noise", "mask-resize=labels-nearest")
    assert default["dataset"]["ignore_index"] == 255
    assert default["reference"]["miou"] == pytest.approx(100 / 6)
    assert default["reference"]["pixel_accuracy"] == pytest.approx(50.0)


def test_ignore_index_is_refused_for_other_tasks(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "--task",
                "detection",
                "--model",
                "zoo-detector",
                "--data",
                str(tmp_path),
                "--ignore-index",
                "0",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    assert "--ignore-index is for --task segmentation" in capsys.readouterr().err


def test_onnx_runtime_runs_a_segmenter_on_inputs_of_several_sizes(tmp_path):
    # 4 x 4 and 6 x 4 label maps: shorter side to 520 gives 520 x 520 and 520 x 780 inputs, so the
    # export's dynamic height and width are used (and logits of two sizes come out of one batch)
    rng = np.random.default_rng(1)
    data = _dataset(tmp_path, [rng.integers(0, 3, (4, 4)), rng.integers(0, 3, (4, 6))])
    results = _run(tmp_path, data, _weights(tmp_path / "random.safetensors"), "--noise", "runtime=onnxruntime")
    row = next(r for r in results["noises"] if r["name"] == "runtime")
    assert row["applies"] and not row["unavailable"]
    (variant,) = results["variants"]
    # float32 ONNX Runtime against float32 torch: the same labels on every pixel of both images
    assert variant["id"] == "runtime/onnxruntime" and variant["identical"] == 100 and variant["delta"] == 0


def test_segmentation_list_format_is_the_list_files_one(tmp_path):
    # `#` only starts a comment at line start; a tab separates paths with spaces; NUL is refused
    import numpy as np
    import pytest
    from PIL import Image

    from sysnoise.errors import UserInputError
    from sysnoise.tasks.segmentation import read_segmentation_list

    for name in ("hash#1.png", "photo 2.png", "hash#1-label.png", "photo 2-label.png"):
        Image.fromarray(np.zeros((4, 4, 3) if "label" not in name else (4, 4), np.uint8)).save(tmp_path / name)
    listing = tmp_path / "segmentation.txt"
    listing.write_text("# a comment\nhash#1.png hash#1-label.png\nphoto 2.png\tphoto 2-label.png\n")
    dataset = read_segmentation_list(listing)
    assert [s.id for s in dataset.samples] == ["hash#1.png", "photo 2.png"] and not dataset.problems
    listing.write_text("photo 2.png photo 2-label.png\n")
    with pytest.raises(UserInputError, match=r"segmentation.txt:1: 4 space-separated fields"):
        read_segmentation_list(listing)
    listing.write_text("a.png\0 b.png\n")
    with pytest.raises(UserInputError, match="NUL byte"):
        read_segmentation_list(listing)
