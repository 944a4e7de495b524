"""`sysnoise train --robust`: augmentation and adversarial training (the paper's Fig. 4 methods)
change training as specified: the augmented pixels are the library's own draws, the adversarial
batch stays within epsilon and the valid range and raises the loss, a short run trains other weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from sysnoise.pipeline.spec import Pipeline
from sysnoise.train import finetune, robust
from sysnoise.train.mix import MixTransform

BASE = Pipeline(input_size=64, crop_pct=1.0)
RECIPE = finetune.Recipe(epochs=1, batch_size=4, lr=1e-3, seed=0)


def images(n=4, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:64]
    base = np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8)
    return np.stack([np.clip(base.astype(int) + rng.integers(-30, 30, 3), 0, 255).astype(np.uint8) for _ in range(n)])


@pytest.mark.parametrize("name, cls", [("randaugment", v2.RandAugment), ("augmix", v2.AugMix)])
def test_augmentation_is_torchvisions_transform_drawn_per_image(name, cls):
    batch = images()
    torch.manual_seed(3)
    ours = robust.augment(robust.ROBUSTNESS(name), batch)
    torch.manual_seed(3)
    transform = cls()
    direct = np.stack([transform(torch.from_numpy(im).permute(2, 0, 1)).permute(1, 2, 0).numpy() for im in batch])
    assert ours.dtype == np.uint8 and ours.shape == batch.shape
    np.testing.assert_array_equal(ours, direct)
    assert (ours != batch).any()


def tiny_bn_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    ).train()


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_adversarial_batch_stays_in_the_ball_and_the_pixel_range_and_raises_the_loss(name):
    method = robust.ROBUSTNESS(name)
    net = tiny_bn_net()
    pixels = images(8)
    x = (
        torch.from_numpy(pixels).permute(0, 3, 1, 2).float() - torch.tensor(BASE.mean).view(1, 3, 1, 1)
    ) / torch.tensor(BASE.std).view(1, 3, 1, 1)
    y = torch.arange(8) % 10
    stats = net[1].running_mean.clone()
    loss = torch.nn.functional.cross_entropy
    torch.manual_seed(0)
    x_adv = robust.adversarial(method, net, x, y, loss, BASE.mean, BASE.std)
    back = x_adv * torch.tensor(BASE.std).view(1, 3, 1, 1) + torch.tensor(BASE.mean).view(1, 3, 1, 1)  # pixel units
    moved = (back - (x * torch.tensor(BASE.std).view(1, 3, 1, 1) + torch.tensor(BASE.mean).view(1, 3, 1, 1))).abs()
    assert moved.max() <= 2.0 + 1e-3 and moved.max() > 1.0  # eps = 2/255 of the range = 2 pixel levels
    assert back.min() >= -1e-3 and back.max() <= 255 + 1e-3
    assert net.training and torch.equal(net[1].running_mean, stats)
    net.eval()
    with torch.no_grad():
        assert loss(net(x_adv), y) > loss(net(x), y)


@pytest.fixture(scope="module")
def plain(scene_files, tmp_path_factory):
    data = scene_files[0].parent / "labels.txt"
    out = tmp_path_factory.mktemp("plain")
    record = finetune.finetune(
        MixTransform({}, BASE, seed=0),
        out,
        "plain",
        init="random",
        recipe=RECIPE,
        train=data,
        val=data,
        log=lambda _: None,
    )
    return data, record


@pytest.mark.parametrize("name", ["randaugment", "augmix", "fgsm", "pgd"])
def test_a_short_run_with_a_method_trains_other_weights_and_records_it(plain, name, tmp_path):
    data, reference_record = plain
    record = finetune.finetune(
        MixTransform({}, BASE, seed=0),
        tmp_path,
        name,
        init="random",
        recipe=RECIPE,
        train=data,
        val=data,
        log=lambda _: None,
        robust=name,
    )
    assert record["weights_sha256"] != reference_record["weights_sha256"]
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved["recipe"]["robustness"]["method"] == name
    assert reference_record["recipe"]["robustness"] is None
