"""--adapt tent: BatchNorm affine parameters adapt by entropy minimisation, nothing else changes,
and in a run every column adapts its own copy from the same trained weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from sysnoise import api
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.outputs import RunOutputs
from sysnoise.errors import UserInputError
from sysnoise.inference.adapt import ADAPTATIONS, Recipe, Tent
from sysnoise.models import wrap_module
from sysnoise.pipeline.preprocess import stage_values
from sysnoise.pipeline.spec import Pipeline

REFERENCE = Pipeline(input_size=32, crop_pct=0.875)


def bn_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()


def stream(batches: int, size: int = 16, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 3, 32, 32, generator=generator) * 1.5 + 0.5 for _ in range(batches)]


def test_entropy_decreases_over_the_stream():
    model = bn_model()
    with torch.no_grad():
        model[-1].weight.mul_(10)  # confident enough that entropy has somewhere to go
    tent = Tent(model, Recipe("adam", 0.01, 16), batch_size=16)
    for x in stream(30):
        tent(x)
    first, last = np.mean(tent.entropies[:5]), np.mean(tent.entropies[-5:])
    assert last < 0.7 * first, (first, last)


def test_only_batchnorm_affine_parameters_change_and_the_given_model_is_untouched():
    model = bn_model()
    before = copy.deepcopy(model.state_dict())
    tent = Tent(model, Recipe("sgd", 0.05, 16, 0.9), batch_size=16)
    for x in stream(5):
        tent(x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    adapted = tent.model.state_dict()
    changed = {k for k in before if k in adapted and not torch.equal(before[k], adapted[k])}
    assert changed == {"1.weight", "1.bias", "4.weight", "4.bias"}


def hand_tent(model, batches, lr: float, momentum: float) -> list[torch.Tensor]:
    """TENT as its authors' code does it (tent.py: configure_model, collect_params, forward_and_adapt)."""
    model = copy.deepcopy(model)
    model.train()  # this model has no dropout, so train() on all of it is TENT's own configuration
    model.requires_grad_(False)
    params = []
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.requires_grad_(True)
            m.track_running_stats, m.running_mean, m.running_var = False, None, None
            params += [m.weight, m.bias]
    optimiser = torch.optim.SGD(params, lr=lr, momentum=momentum)
    outputs = []
    for x in batches:
        logits = model(x)
        (-(logits.softmax(1) * logits.log_softmax(1)).sum(1)).mean().backward()
        optimiser.step()
        optimiser.zero_grad()
        outputs.append(logits.detach())
    return outputs


def test_each_column_adapts_its_own_copy_from_the_trained_weights(gradient_images, tmp_path):
    model = bn_model()
    before = copy.deepcopy(model.state_dict())
    options = EngineOptions(batch_size=2, workers=0, progress=False, adapt="tent")
    api.run(
        wrap_module(model, reference=REFERENCE, num_classes=5),
        gradient_images[0].parent,
        noises=["resize=opencv-nearest"],
        out=tmp_path / "run",
        options=options,
        figures=False,
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the loaded model: untouched
    outputs = RunOutputs.load(tmp_path / "run" / "outputs.npz")
    paths = sorted(gradient_images, key=lambda p: p.name)
    assert outputs.sample_ids == [p.name for p in paths]
    lr = 0.00025 * 2 / 64  # TENT's ImageNet rate at batch 64, scaled to the batch of 2
    for column, pipeline in (
        ("reference", REFERENCE),
        ("resize/opencv-nearest", REFERENCE.replace(resize="opencv-nearest")),
    ):
        inputs = torch.from_numpy(np.stack([stage_values(p.read_bytes(), pipeline)["normalise"] for p in paths]))
        logits = torch.cat(hand_tent(model, [inputs[0:2], inputs[2:3]], lr, 0.9))  # from the trained weights
        expected = logits.softmax(1).sort(1, descending=True).values[:, :5].numpy()
        np.testing.assert_allclose(outputs.arrays[column]["prob"][:, :5], expected, rtol=1e-5, atol=1e-6)


def test_a_model_without_batchnorm_is_refused(gradient_images, tmp_path):
    torch.manual_seed(0)
    plain = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)
    )
    with pytest.raises(UserInputError, match="no BatchNorm layer with affine parameters"):
        api.run(
            wrap_module(plain, reference=REFERENCE, num_classes=3),
            gradient_images[0].parent,
            noises=[],
            out=tmp_path / "run",
            options=EngineOptions(workers=0, progress=False, adapt="tent"),
            figures=False,
        )


def test_a_stage_without_gradients_is_recorded_for_its_column_and_the_run_goes_on(gradient_images, tmp_path):
    model = bn_model()
    model[2], model[5] = torch.nn.ReLU(inplace=True), torch.nn.ReLU(inplace=True)  # as torchvision's ResNets
    api.run(
        wrap_module(model, reference=REFERENCE, num_classes=5),
        gradient_images[0].parent,
        noises=["precision=fp16"],
        out=tmp_path / "run",
        figures=False,
        options=EngineOptions(batch_size=2, workers=0, progress=False, adapt="tent"),
    )
    outputs = RunOutputs.load(tmp_path / "run" / "outputs.npz")
    assert (outputs.errors["reference"] == "").all()
    assert all(
        e.startswith("--adapt tent: cannot adapt this model stage: RuntimeError")
        for e in outputs.errors["precision/fp16"]
    )


def test_bn_stats_uses_each_batchs_statistics_and_changes_no_parameter():
    model = bn_model()
    before = copy.deepcopy(model.state_dict())
    adapted = Tent(model, ADAPTATIONS("bn-stats"), batch_size=16)
    x = stream(1)[0]
    logits = adapted(x)
    by_hand = copy.deepcopy(model).train()  # train mode: BatchNorm normalises with the batch's own statistics
    with torch.no_grad():
        expected = by_hand(x)
    torch.testing.assert_close(logits, expected)
    with torch.no_grad():
        assert not torch.allclose(logits, model(x))  # not the running statistics
    assert all(torch.equal(before[k], v) for k, v in adapted.model.state_dict().items() if k in before)
