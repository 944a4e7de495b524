"""--class-map: class folders (ImageNet-style wnids) mapped to a 10-class model's indices 5 and 7
score as computed by hand; without a map, labels that cannot be the model's classes are warned
about, naming --class-map."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sysnoise import api, cli
from sysnoise.data.class_map import apply_class_map
from sysnoise.engine.execute import EngineOptions
from sysnoise.errors import UserInputError
from sysnoise.models import wrap_module
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.classification import read_dataset

RED, GREEN, BLUE = (230, 10, 10), (10, 230, 10), (10, 10, 230)
# class folder -> colours of its images; the model below says 5 for red, 7 for green, 2 for blue
FOLDERS = {"n01440764": [RED, RED, RED, BLUE], "n01443537": [GREEN, GREEN, RED]}
MAP = {"n01440764": 5, "n01443537": 7}
HAND_TOP1 = 100 * 5 / 7  # n01440764 (5): 3 red right, blue says 2; n01443537 (7): 2 green right, red says 5


class ColourModel(torch.nn.Module):
    """10 classes: the logits of 5, 7 and 2 are the mean of the red, green and blue input channel."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 10)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.zero_()
            for channel, cls in enumerate((5, 7, 2)):
                self.fc.weight[cls, channel] = 1.0

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def _folders(root):
    for folder, colours in FOLDERS.items():
        (root / folder).mkdir(parents=True)
        for i, colour in enumerate(colours):
            Image.fromarray(np.full((36, 36, 3), colour, np.uint8)).save(root / folder / f"{i}.png")
    return root


def _model():
    return wrap_module(ColourModel().eval(), reference=Pipeline(input_size=32, crop_pct=1.0))


def _options():
    return EngineOptions(progress=False, workers=0)


def test_mapped_folders_score_as_computed_by_hand(tmp_path):
    data = _folders(tmp_path / "val")
    (tmp_path / "map.json").write_text(json.dumps(MAP))
    mapped = apply_class_map(read_dataset(data), tmp_path / "map.json")
    assert sorted({s.labels for s in mapped.samples}) == [(5,), (7,)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # mapped labels are the model's classes: nothing to warn about
        results = api.run(
            _model(),
            data,
            out=tmp_path / "out",
            noises=[],
            figures=False,
            options=_options(),
            class_map=tmp_path / "map.json",
        )
    assert results["reference"]["n"] == 7 and results["reference"]["top1"] == pytest.approx(HAND_TOP1)


def test_the_class_map_through_the_cli_with_a_yaml_file_and_an_onnx_model(tmp_path):
    pytest.importorskip("onnxruntime", reason="pip install sysnoise[onnx]")
    data = _folders(tmp_path / "val")
    (tmp_path / "map.yaml").write_text("".join(f"{name}: {index}\n" for name, index in MAP.items()))
    model = tmp_path / "colour.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ColourModel().eval(), (torch.zeros(1, 3, 32, 32),), str(model), dynamo=False)
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                "run",
                "--model",
                f"onnx:{model}",
                "--data",
                str(data),
                "--class-map",
                str(tmp_path / "map.yaml"),
                "--out",
                str(out),
                "--noise",
                "resize=pillow-nearest",
                "--workers",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((out / "results.json").read_text())["reference"]["top1"] == pytest.approx(HAND_TOP1)
    assert (
        cli.main(
            [
                "run",
                "--model",
                f"onnx:{model}",
                "--data",
                str(data),
                "--class-map",
                str(tmp_path / "map.yaml"),
                "--task",
                "segmentation",
                "--out",
                str(tmp_path / "seg"),
            ]
        )
        == 2
    )


def test_labels_that_cannot_be_the_model_s_classes_are_warned_about(tmp_path):
    data = _folders(tmp_path / "val")
    with pytest.warns(
        UserWarning,
        match=r"2 class folders \(n01440764, n01443537\) .* model has 10 classes.*"
        r"--class-map FILE",
    ):
        results = api.run(_model(), data, out=tmp_path / "out", noises=[], figures=False, options=_options())
    assert results["reference"]["top1"] == 0  # folders scored as classes 0 and 1, which the model never says
    listed = tmp_path / "listed"
    listed.mkdir()
    Image.fromarray(np.full((36, 36, 3), RED, np.uint8)).save(listed / "a.png")
    Image.fromarray(np.full((36, 36, 3), GREEN, np.uint8)).save(listed / "b.png")
    (listed / "labels.txt").write_text("a.png 5\nb.png 12\n")
    with pytest.warns(
        UserWarning,
        match=r"1 of 2 samples have labels outside the model's 10 classes \(e.g. b.png\)"
        r".*--class-map FILE",
    ):
        api.run(_model(), listed / "labels.txt", out=tmp_path / "out2", noises=[], figures=False, options=_options())


def test_class_map_mistakes_are_user_errors(tmp_path):
    data = _folders(tmp_path / "val")
    dataset = read_dataset(data)
    bad = tmp_path / "bad.yaml"
    bad.write_text("n01440764: 5\nn01443537: seven\n")
    with pytest.raises(UserInputError, match=rf"{bad}:2: 'n01443537' maps to 'seven'; a model class index"):
        apply_class_map(dataset, bad)
    partial = tmp_path / "partial.json"
    partial.write_text('{"n01440764": 5, "n09999999": 1}')
    with pytest.raises(UserInputError, match=r"no model index for 1 of the dataset's classes \(n01443537\)"):
        apply_class_map(dataset, partial)
    (tmp_path / "list.txt").write_text("val/n01440764/0.png 5\n")
    with pytest.raises(UserInputError, match="a class map maps class names, and .* has none"):
        apply_class_map(read_dataset(tmp_path / "list.txt"), partial)
    (tmp_path / "list.yaml").write_text("- 5\n- 7\n")
    with pytest.raises(UserInputError, match="expected one `class name: model index` entry per class"):
        apply_class_map(dataset, tmp_path / "list.yaml")
