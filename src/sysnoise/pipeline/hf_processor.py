"""The installed transformers' own image processor as resize options: what a Hugging Face model's
deployment computes when it calls its processor instead of the PIL path its preprocessor_config.json
describes (reference_sources.from_hf_processor reads that config into the reference pipeline).

transformers' ViTImageProcessor (the resize-to-size processor of ViT, DeiT, BEiT and others; in
transformers 5 its backend is torchvision's tensor resize, antialiased) resizes the uint8 image to
the pipeline's size with the config's `resample`; its rescale and normalise steps are switched off,
so the pipeline's own normalise stage follows as for every resize option. Its uint8 output is the
stage's output as it is.

- transformers-bilinear: resample=2 (PILImageResampling.BILINEAR), what most ViT configs name
- transformers-bicubic:  resample=3 (PILImageResampling.BICUBIC)
"""

from __future__ import annotations

from functools import cache

import numpy as np

from sysnoise import extras
from sysnoise.pipeline.resize import RESIZES

TRANSFORMERS = {"available": lambda: extras.available("lm"), "install": extras.install_line("lm")}


@cache
def processor(resample: int, width: int, height: int):
    from transformers import ViTImageProcessor

    return ViTImageProcessor(
        size={"height": height, "width": width}, resample=resample, do_rescale=False, do_normalize=False
    )


def _resize(resample: int):
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        out = processor(resample, *size)(images=np.array(image), return_tensors="np")["pixel_values"][
            0
        ]  # a writable copy
        return np.clip(np.rint(np.transpose(out, (1, 2, 0))), 0, 255).astype(np.uint8)

    return resize


for _resample, _name in [(2, "bilinear"), (3, "bicubic")]:
    RESIZES.register(
        f"transformers-{_name}",
        f"the installed transformers' ViTImageProcessor resize, "
        f"resample={_resample} ({_name}), no rescale or normalise",
        library="transformers",
        resample=_resample,
        **TRANSFORMERS,
    )(_resize(_resample))
