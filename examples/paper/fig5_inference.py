"""Paper Fig. 5 for the inference noises: where INT8 and max-pool ceil mode change zoo-resnet's
feature maps on one scenes image (the pre-processing pictures come from every run's report).

  python examples/paper/fig5_inference.py OUT.png [SAMPLE_INDEX]

Panels: the model input; for INT8 (simulated, min-max calibration on 32 scenes-train images) and
for ceil mode: |variant - reference| of layer1's and layer4's outputs, averaged over channels.
Ceil mode grows each map by one row and column at the bottom/right: the difference is taken on the
reference map's extent (top-left aligned), and the extra row/column is drawn as not compared."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from sysnoise.inference import calibrate
from sysnoise.inference.build import build_model
from sysnoise.models import load_model
from sysnoise.pipeline.preprocess import stage_values
from sysnoise.train.zoo_training import read_list
from sysnoise.zoo.datasets import DATASETS

LAYERS = ("layer1", "layer4")


def feature_maps(model, x) -> dict[str, np.ndarray]:
    seen = {}
    root = getattr(model, "module", model)
    hooks = [
        getattr(root, name).register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
        for name in LAYERS
        if hasattr(root, name)
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return {name: value[0].float().numpy() for name, value in seen.items()}


def main(out: str, index: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = load_model("zoo-resnet")
    reference = loaded.reference
    paths, _ = read_list(DATASETS("scenes")())
    train_paths, _ = read_list(DATASETS("scenes-train")())
    x = torch.from_numpy(stage_values(paths[index].read_bytes(), reference)["normalise"])[None]
    calibration = calibrate.batches(train_paths[:32], reference, 16)
    models = {
        "reference": build_model(loaded.module, reference),
        "INT8": build_model(loaded.module, reference.replace(precision="int8"), calibration),
        "ceil mode": build_model(loaded.module, reference.replace(operators=("maxpool-ceil",))),
    }
    maps = {name: feature_maps(model, x) for name, model in models.items()}
    if set(maps["INT8"]) != set(LAYERS):
        raise SystemExit(f"the INT8 model's layers are not reachable by name: {sorted(maps['INT8'])}")
    pixels = stage_values(paths[index].read_bytes(), reference)["geometry"]
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.2))
    axes[0].imshow(pixels)
    axes[0].set_title(f"input ({paths[index].name})")
    panel = 1
    for variant in ("INT8", "ceil mode"):
        for layer in LAYERS:
            ref, var = maps["reference"][layer], maps[variant][layer]
            h, w = ref.shape[1:]
            diff = np.full(var.shape[1:], np.nan)
            diff[:h, :w] = np.abs(var[:, :h, :w] - ref).mean(0)
            shown = axes[panel].imshow(diff, cmap="magma")
            axes[panel].set_title(
                f"{variant}: |diff| {layer} {var.shape[1]}x{var.shape[2]}\n"
                f"mean {np.nanmean(diff):.3f}, ref mean |act| {np.abs(ref).mean():.3f}",
                fontsize=8,
            )
            fig.colorbar(shown, ax=axes[panel], fraction=0.046)
            print(
                f"{variant} {layer}: map {tuple(var.shape[1:])} vs {tuple(ref.shape[1:])}, mean |diff| "
                f"{np.nanmean(diff):.4f}, max {np.nanmax(diff):.4f}, reference mean |activation| {np.abs(ref).mean():.4f}"
            )
            panel += 1
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
