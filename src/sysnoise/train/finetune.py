"""`sysnoise train`: fine-tune (or train) the zoo classifier under one training system, fixed or
mixed, with the same recipe whatever the system, so models differ only in what their training
images went through. Writes NAME.safetensors and NAME.json beside it; the JSON (the training
system, its reference pipeline, the recipe, the history) is what `sysnoise run --model zoo-resnet
--weights NAME.safetensors` and `sysnoise matrix` read.

The loop is the zoo's (`zoo_training.fit`). Every training file is pushed through every
pipeline of the MixTransform once, up front (`MixTransform.all_pixels`: shared decodes computed
once); each step then takes, for each sample, the bank its `MixTransform.choose(index, epoch)`
names (or one bank per batch with per="batch"). The pixels are exactly those the transform
itself returns for that sample and epoch; precomputing them only avoids decoding every file
every epoch on a small CPU.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sysnoise.diffing import resolve_pipeline
from sysnoise.engine.store import atomic_write_text
from sysnoise.errors import UserInputError
from sysnoise.train.mix import MixTransform, parse_mix
from sysnoise.train.robust import ROBUSTNESS, adversarial, augment
from sysnoise.train.zoo_training import (
    classifier_top1,
    dihedral,
    environment,
    fit,
    pipeline_pixels,
    read_list,
    save_weights,
    set_threads,
    to_tensor,
)
from sysnoise.weights import load_state_dict, sha256_file
from sysnoise.zoo import resnet, scenes
from sysnoise.zoo.datasets import DATASETS

MODELS = ("zoo-resnet",)  # classifiers with a training split and a loader that reads NAME.json
SCHEMA = "sysnoise.trained/1"


@dataclass(frozen=True)
class Recipe:
    """Everything but the training system. The matrix rows share one Recipe."""

    epochs: int = 6
    batch_size: int = 64
    # one-cycle peak, the zoo recipe's own: 3 epochs at 5e-4 left every row within sampling noise
    # of its starting weights (docs/mix-training.md), so nothing could be learnt about the system
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.05
    # zoo-resnet itself saw 40,000 scenes-train images: fine-tuning it on the 5,000 of the default
    # split for 6 epochs mostly overfits, whatever the system; None: the whole default split
    n_train: int | None = 20000
    seed: int = 0
    per: str = "sample"  # draw the pipeline per sample or per batch

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise UserInputError(f"recipe needs epochs >= 1, batch size >= 1 and lr > 0, got {self}")
        if self.per not in ("sample", "batch"):
            raise UserInputError(f"--per must be sample or batch, got {self.per!r}")


def initial_state(init: str, seed: int) -> tuple[dict | None, dict]:
    """(state dict or None for a random start, a record of where it came from)."""
    if init == "random":
        return None, {"init": "random", "seed": seed}
    path = resnet.weights_path() if init in MODELS else Path(init)
    if not path.is_file():
        hint = " (the zoo classifier is not trained yet: sysnoise train-zoo zoo-resnet)" if init in MODELS else ""
        raise UserInputError(f"initial weights not found: {path}{hint}")
    return load_state_dict(path), {"init": init, "path": str(path), "sha256": sha256_file(path)}


def _banks(paths: list[Path], transform: MixTransform, threads: int = 2) -> np.ndarray:
    """uint8 (pipelines, N, H, W, 3): every file through every pipeline of the transform."""
    with ThreadPoolExecutor(threads) as pool:
        per_file = list(pool.map(transform.all_pixels, paths))
    return np.stack([np.stack(column) for column in zip(*per_file)])


def choices_for(transform: MixTransform, indices: np.ndarray, epoch: int, batch: int, per: str) -> np.ndarray:
    """The pipeline each sample of batch number `batch` trains with in `epoch`."""
    if per == "batch":
        return np.full(len(indices), transform.choose_batch(batch, epoch))
    return np.array([transform.choose(int(i), epoch) for i in indices])


def finetune(
    transform: MixTransform,
    out: str | Path,
    name: str,
    *,
    model: str = "zoo-resnet",
    init: str = "zoo-resnet",
    recipe: Recipe = Recipe(),
    label: str | None = None,
    train: Path | None = None,
    val: Path | None = None,
    log: Callable[[str], None] = print,
    robust: str | None = None,
) -> dict:
    """Train `model` from `init` ("zoo-resnet": its trained weights; "random"; or a weights path)
    on `train` (a list file; default scenes-train) through `transform`; write OUT/NAME.safetensors
    and OUT/NAME.json. Returns the JSON record. The top-1 on `val` (default scenes) is measured
    under the transform's reference pipeline at the end; nothing is selected on it (fixed epochs,
    last weights kept). robust: a general robustness method on top (train/robust.py: RandAugment,
    AugMix, FGSM or PGD adversarial training), the paper's Fig. 4 comparison."""
    import torch

    if model not in MODELS:
        raise UserInputError(f"sysnoise train supports {', '.join(MODELS)}, not {model!r}")
    if transform.random_crop is not None:
        raise UserInputError(
            "the zoo recipe trains on the eval geometry (80 -> 64 px scenes) with exact "
            "flips/rotations; random_crop is for ImageNet-style scripts"
        )
    method = ROBUSTNESS(robust) if robust else None
    set_threads()
    started = time.perf_counter()
    state, init_record = initial_state(init, recipe.seed)
    train_list = Path(train) if train else DATASETS("scenes-train")(n=recipe.n_train)
    val_list = Path(val) if val else DATASETS("scenes")()
    paths, labels = read_list(train_list)
    if train and recipe.n_train:
        paths, labels = paths[: recipe.n_train], labels[: recipe.n_train]
    val_paths, val_labels = read_list(val_list)
    banks = _banks(paths, transform)
    reference = transform.reference
    val_images = pipeline_pixels(val_paths, reference)
    log(
        f"{name}: {len(paths)} training files through {len(transform.pipelines)} pipeline(s), "
        f"{len(val_paths)} val files ({time.perf_counter() - started:.0f} s)"
    )

    torch.manual_seed(recipe.seed)
    net = resnet.build(len(scenes.CLASSES))
    if state is not None:
        net.load_state_dict(state)
    steps = len(paths) // recipe.batch_size
    if steps == 0:
        raise UserInputError(f"{len(paths)} training images are fewer than one batch of {recipe.batch_size}")
    counts = np.zeros(len(transform.pipelines), np.int64)

    def batches(epoch, rng):
        order = rng.permutation(len(paths))
        for b in range(steps):
            idx = order[b * recipe.batch_size : (b + 1) * recipe.batch_size]
            chosen = choices_for(transform, idx, epoch, b, recipe.per)
            np.add.at(counts, chosen, 1)
            pixels = banks[chosen, idx]
            if method is not None and method.kind == "augment":
                pixels = augment(method, pixels)
            x = dihedral(to_tensor(pixels, reference), int(rng.integers(8)))
            yield x, torch.from_numpy(labels[idx])

    def loss(logits, y):
        return torch.nn.functional.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)

    def loss_fn(net, batch):
        x, y = batch
        if method is not None and method.kind == "adversarial":
            x = adversarial(method, net, x, y, loss, reference.mean, reference.std)
        return loss(net(x), y)

    history = fit(
        net,
        batches,
        loss_fn,
        epochs=recipe.epochs,
        steps_per_epoch=steps,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        seed=recipe.seed,
        log=log,
    )
    top1 = classifier_top1(net, val_images, val_labels, reference)
    out = Path(out)
    weights = out / f"{name}.safetensors"
    record = {
        "schema": SCHEMA,
        "name": name,
        "label": label or name,
        "model": model,
        "reference_pipeline": reference.to_dict(),
        "training": {
            **transform.describe(),
            "per": recipe.per,
            "drawn": {"counts": counts.tolist(), "total": int(counts.sum())},
        },
        "recipe": {
            **asdict(recipe),
            "optimiser": "AdamW, one-cycle (zoo_training.fit)",
            "augmentation": "random flip / 90-degree rotation of the pipeline output (exact)",
            "robustness": {"method": robust, **method.describe()} if method else None,
            "data": {
                "train": str(train or "scenes-train"),
                "n_train": len(paths),
                "val": str(val or "scenes"),
                "n_val": len(val_paths),
            },
            **init_record,
        },
        "metrics": {"val_top1_reference_pipeline": round(top1, 4)},
        "history": history,
        "train_seconds": round(time.perf_counter() - started),
        "environment": environment(),
        "weights_sha256": save_weights(net, weights),
    }
    atomic_write_text(weights.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    log(f"{name}: val top-1 {top1:.4f} under {_changes(resnet.reference_pipeline(), reference)}; wrote {weights}")
    return record


def _changes(base, pipeline) -> str:
    diff = base.diff(pipeline)
    return "+".join(f"{k}={b}" for k, (_, b) in diff.items()) or "the zoo reference"


def base_pipeline(model: str):
    """The model's own reference pipeline, without loading (or needing) its weights."""
    if model not in MODELS:
        raise UserInputError(f"sysnoise train supports {', '.join(MODELS)}, not {model!r}")
    return resnet.reference_pipeline()


def transform_for(model: str, pipeline: str = "reference", mix: list[str] | None = None, seed: int = 0) -> MixTransform:
    """Command-line spellings -> MixTransform: `pipeline` as for `sysnoise diff` (reference, a file,
    NOISE=OPTION+...) gives the fixed fields; each --mix FIELD=OPT[:W],... a mixed one."""
    base = resolve_pipeline(pipeline, base_pipeline(model))
    try:
        return MixTransform(parse_mix(mix or []), base, seed=seed)
    except ValueError as err:
        raise UserInputError(str(err)) from None


def default_name(model: str, transform: MixTransform) -> str:
    """zoo-resnet-resize-opencv-nearest, zoo-resnet-mix-decoder, ...: what differs from the model's
    own reference, fixed fields first."""
    mixed = [field for field, options in transform.weights.items() if len(options) > 1]
    fixed = [f"{k}-{b}" for k, (_, b) in base_pipeline(model).diff(transform.reference).items() if k not in mixed]
    mixed = [f"mix-{field}" for field in mixed]
    return "-".join([model, *fixed, *mixed]) if fixed or mixed else f"{model}-reference"
