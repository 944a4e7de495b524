import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def lite0():
    from sysnoise.models import load_model

    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def lite0_photos(lite0, demo_list_file):
    """(calibration batch, evaluation batch) of real photos under Lite0's reference pipeline, from
    the demo set split by the same held-out rule a run uses (so the two never overlap)."""
    from sysnoise.inference import calibrate
    from sysnoise.tasks.classification import read_dataset

    dataset = read_dataset(demo_list_file)
    evaluation, calibration = calibrate.hold_out(dataset.samples)
    cal = calibrate.batches(calibration, lite0.reference, batch_size=64)
    ev = calibrate.batches(evaluation[:24], lite0.reference, batch_size=64)
    return cal, ev[0]


def random_bn_stats(model, seed: int = 0):
    """Give every batch-norm non-trivial running statistics and affine parameters, so folding and
    epsilon changes are visible on a random-init model."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.05)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(n, generator=generator) - 0.5)
    return model


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


class EngineCNN(torch.nn.Module):
    """A small classifier every deployment engine converts (conv, BN, ReLU, max-pool, mean, linear)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(2)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.relu(self.conv2(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def engine_cnn():
    torch.manual_seed(0)
    return random_bn_stats(EngineCNN().eval())


@pytest.fixture(scope="module")
def engine_batches():
    """(calibration batches, evaluation batch) of random 32x32 inputs."""
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(8, 3, 32, 32, generator=generator) for _ in range(2)], torch.randn(
        6, 3, 32, 32, generator=generator
    )
