"""torchvision's segmentation models as model stages: their architecture rebuilt from a state dict
(nothing downloaded), their eval transform as a reference pipeline, and a wrapper that ends the
model at its logits."""

from __future__ import annotations

import torch

from sysnoise.errors import UserInputError
from sysnoise.pipeline.spec import Pipeline
from sysnoise.weights import load_into


class Logits(torch.nn.Module):
    """A torchvision segmentation model ended at its 'out' logits."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)["out"]


def logits_module(module):
    """torchvision's segmentation models return {'out': logits, 'aux': ...}: their model stage is
    wrapped to end at 'out'. Any other module is taken to return the logits (N, C, h, w)."""
    from torchvision.models.segmentation import FCN, LRASPP, DeepLabV3  # torchvision loads when a model needs it

    if not isinstance(module, (DeepLabV3, FCN, LRASPP)):
        return module
    return Logits(module).eval()


def load_torchvision(arch: str, weights, state: dict):
    """A torchvision segmentation architecture with the classes (and auxiliary head, if any) its
    state dict has; nothing downloaded, no pretrained backbone either."""
    import torchvision

    head = next((k for k in ("classifier.4.weight", "classifier.low_classifier.weight") if k in state), None)
    if head is None:  # DeepLabV3 / FCN end in classifier.4, LRASPP in its low/high classifiers
        raise UserInputError(f"{weights}: not a state dict of torchvision's {arch} (no classifier.4 / low_classifier)")
    num_classes = int(state[head].shape[0])
    options = {"aux_loss": True} if any(k.startswith("aux_classifier.") for k in state) else {}
    module = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=num_classes, **options)
    load_into(module, state, weights)
    return module.eval(), num_classes


def reference_pipeline(module):
    """torchvision's segmentation eval transform: shorter side to 520 (Pillow bilinear, antialiased),
    no crop, ImageNet mean/std."""
    return Pipeline(resize="pillow-bilinear", crop="shorter-side", input_size=520, crop_pct=1.0)
