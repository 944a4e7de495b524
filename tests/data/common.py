"""A tiny classifier and 32x32 images whose reference pre-processing is the identity, so the
expected predictions come from a direct forward of the pixels, not through sysnoise's pipeline."""

import numpy as np
import torch

from sysnoise.models import wrap_module
from sysnoise.pipeline.spec import Pipeline

SIZE = 32
CLASSES = 3
REFERENCE = Pipeline(input_size=SIZE, crop_pct=1.0)


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(8, CLASSES)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def tiny_model():
    torch.manual_seed(0)
    return wrap_module(TinyCNN().eval(), reference=REFERENCE, num_classes=CLASSES)


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    """A random colour per image with blocky noise over it, so the tiny model's predictions vary."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        noise = np.repeat(np.repeat(rng.integers(-40, 40, (SIZE // 4, SIZE // 4, 3)), 4, 0), 4, 1)
        out.append(np.clip(rng.integers(0, 256, 3) + noise, 0, 255).astype(np.uint8))
    return out


def direct_top1(model, arrays: list[np.ndarray]) -> np.ndarray:
    """The model's top-1 on the pixels normalised by hand (the reference's mean/std, no resize)."""
    mean, std = np.array(REFERENCE.mean, np.float32), np.array(REFERENCE.std, np.float32)
    batch = np.stack([((a.astype(np.float32) - mean) / std).transpose(2, 0, 1) for a in arrays])
    with torch.no_grad():
        return model.module(torch.from_numpy(batch)).argmax(1).numpy()


def accuracy(predicted: np.ndarray, labels: list[int]) -> float:
    return float(np.mean(predicted == np.array(labels)) * 100)
