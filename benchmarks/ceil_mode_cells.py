"""Where a zoo classifier's ceil-mode drop comes from (docs/zoo.md, docs/inference.md).

    PYTHONPATH=src .venv/bin/python benchmarks/ceil_mode_cells.py [--models zoo-resnet zoo-resnet7] [--n 2000]

Ceil mode changes the max-pool's output by one row and column at the bottom/right; every later
map grows by one too, and the global average pool then averages over new cells as well as over
the original ones (whose values also change near that edge). For each model, on the first N
scenes val images under its reference pipeline: top-1 in floor mode (the reference), in ceil mode,
and in ceil mode with the global pool taken over the original cells only (the top-left floor-size
window of the grown map), which keeps the changed values but drops the new cells; the share of
new cells; and how much each original cell's features change (mean |ceil - floor| over images
and channels, relative to the mean |floor| feature). Each ceil-mode top-1 has a paired bootstrap 95 % interval for its drop.
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import torch


def predictions(model, x: torch.Tensor, crop: int | None = None, batch: int = 250) -> np.ndarray:
    """Top-1 classes; with `crop`, the global pool is taken over the top-left crop x crop cells."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            features = model.features(x[i : i + batch])
            if crop is not None:
                features = features[..., :crop, :crop]
            out.append(model.fc(features.mean((-2, -1))).argmax(1).numpy())
    return np.concatenate(out)


def cell_change(floor_model, ceil_model, x: torch.Tensor, side: int, batch: int = 250) -> list[list[float]]:
    """Per original cell of the final map: mean |ceil - floor| feature change over images and
    channels, relative to the mean |floor feature|."""
    change, size = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            floor = floor_model.features(x[i : i + batch])
            ceil = ceil_model.features(x[i : i + batch])[..., :side, :side]
            change = change + (ceil - floor).abs().sum((0, 1))
            size += float(floor.abs().mean((-2, -1)).sum())
    return [[round(float(v), 2) for v in row] for row in (change / size).tolist()]


def pool_unchanged(floor_model, ceil_model, x: torch.Tensor) -> bool:
    """The max-pool's outputs at the original positions are the same in both modes."""
    with torch.no_grad():
        floor = floor_model.maxpool(floor_model.relu(floor_model.bn1(floor_model.conv1(x))))
        ceil = ceil_model.maxpool(ceil_model.relu(ceil_model.bn1(ceil_model.conv1(x))))
    return bool(torch.equal(ceil[..., : floor.shape[-2], : floor.shape[-1]], floor))


def drop_interval(reference_ok: np.ndarray, variant_ok: np.ndarray, resamples: int = 2000) -> list[float]:
    """Paired bootstrap 95 % interval of the top-1 drop in points (same images resampled for both)."""
    rng = np.random.default_rng(0)
    idx = rng.integers(len(reference_ok), size=(resamples, len(reference_ok)))
    drops = 100 * (reference_ok[idx].mean(1) - variant_ok[idx].mean(1))
    return [round(float(v), 2) for v in np.percentile(drops, [2.5, 97.5])]


def main() -> None:
    from sysnoise.models import load_model
    from sysnoise.train import zoo_training as zt
    from sysnoise.zoo import scenes

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="*", default=["zoo-resnet", "zoo-resnet7"])
    parser.add_argument("--n", type=int, default=2000, help="first N scenes val images")
    args = parser.parse_args()
    zt.set_threads(1)
    paths, labels = zt.read_list(scenes.materialise("classification", "val", n=args.n) / "labels.txt")
    rows = {}
    for name in args.models:
        loaded = load_model(name)
        x = zt.to_tensor(zt.pipeline_pixels(paths, loaded.reference), loaded.reference)
        floor_model = loaded.module
        ceil_model = copy.deepcopy(floor_model)
        ceil_model.maxpool.ceil_mode = True
        with torch.no_grad():
            floor_side = floor_model.features(x[:1]).shape[-1]
            ceil_side = ceil_model.features(x[:1]).shape[-1]
        ok = {
            "floor": predictions(floor_model, x) == labels,
            "ceil": predictions(ceil_model, x) == labels,
            "ceil_original_cells": predictions(ceil_model, x, crop=floor_side) == labels,
        }
        rows[name] = {
            "images": len(labels),
            "final_map": [floor_side, ceil_side],
            "new_cells": f"{ceil_side**2 - floor_side**2} of {ceil_side**2}",
            "new_share": round((ceil_side**2 - floor_side**2) / ceil_side**2, 4),
            **{f"top1_{k}": round(100 * float(v.mean()), 2) for k, v in ok.items()},
            "pool_original_positions_unchanged": pool_unchanged(floor_model, ceil_model, x[:250]),
            "cell_change": cell_change(floor_model, ceil_model, x, floor_side),
            **{
                f"drop_{k}": [round(100 * float(ok["floor"].mean() - v.mean()), 2), drop_interval(ok["floor"], v)]
                for k, v in ok.items()
                if k != "floor"
            },
        }
        print(json.dumps({name: rows[name]}), flush=True)


if __name__ == "__main__":
    main()
