"""Training recipes for the controlled model zoo (`sysnoise train-zoo NAME`).

One loop (`fit`) trains every zoo model: AdamW with a one-cycle schedule over a stream of
batches the recipe provides. Which system the training images go through is a parameter
(`pipeline`): the recipes push every training image through the project's own pipeline stages
(`sysnoise.pipeline.preprocess.pixels`: decode, colour, resize/crop) and `normalise`, so the
declared reference Pipeline is exactly the system the weights were trained with. Mix training
can pass another Pipeline, or several.

Augmentation is applied after the pipeline, to its output pixels, and only as exact pixel
permutations (flips, 90-degree rotations), so it adds no resampling system of its own.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from sysnoise.analysis.classification import correct
from sysnoise.analysis.detection import coco_eval, detections_json, ground_truth
from sysnoise.pipeline.preprocess import pixels
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.classification import outputs_from_logits, read_list_file
from sysnoise.tasks.detection import read_detection_data
from sysnoise.weights import load_state_dict, sha256_file
from sysnoise.zoo import detector, resnet, scenes, segmenter
from sysnoise.zoo.datasets import DATASETS
from sysnoise.zoo.resnet import weights_path
from sysnoise.zoo.scenes import IGNORE

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
RECIPES: dict[str, Callable[..., dict]] = {}


def recipe(name: str):
    def add(fn):
        RECIPES[name] = fn
        return fn

    return add


def set_threads(n: int | None = None) -> None:
    import torch

    torch.set_num_threads(n or int(os.environ.get("SYSNOISE_THREADS", "1")))


# --------------------------------------------------------------------------- pipeline pixels
def pipeline_pixels(
    paths: Sequence[Path], pipeline: Pipeline | Sequence[Pipeline], *, threads: int = 2, seed: int = 0
) -> np.ndarray:
    """uint8 (N, H, W, 3): each file through the pipeline's decode, colour and geometry stages.

    With several pipelines (mix training) each image goes through one of them, drawn with `seed`."""
    pipelines = [pipeline] if isinstance(pipeline, Pipeline) else list(pipeline)
    choice = np.random.default_rng(seed).integers(len(pipelines), size=len(paths))

    def one(i: int) -> np.ndarray:
        p = pipelines[choice[i]]
        out = pixels(Path(paths[i]).read_bytes(), [p])[p.prefix("geometry")]
        if isinstance(out, Exception):
            raise RuntimeError(f"{paths[i]}: {out}")
        return out

    with ThreadPoolExecutor(threads) as pool:
        return np.stack(list(pool.map(one, range(len(paths)))))


def to_tensor(images: np.ndarray, pipeline: Pipeline):
    """uint8 NHWC -> float32 NCHW, normalised as `sysnoise.pipeline.normalise` does."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    mean = torch.tensor(pipeline.mean).view(1, 3, 1, 1)
    std = torch.tensor(pipeline.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def dihedral(x, k: int):
    """One of the 8 flips/rotations of NCHW (or NHW) tensors; k in 0..7."""
    import torch

    if k & 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k & 3, dims=(-2, -1))


# --------------------------------------------------------------------------- the loop
def fit(
    model,
    batches: Callable[[int, np.random.Generator], Iterable],
    loss_fn,
    *,
    epochs: int,
    steps_per_epoch: int,
    lr: float,
    weight_decay: float = 0.05,
    seed: int = 0,
    log: Callable[[str], None] = print,
    evaluate: Callable[[object, int], dict] | None = None,
    eval_every: int = 0,
    clip: float | None = 5.0,
    optimiser: str = "adamw",
) -> list:
    """AdamW (or SGD with Nesterov momentum) + one-cycle over `epochs` x `steps_per_epoch` batches
    from `batches(epoch, rng)`; `loss_fn(model, batch)` returns a scalar loss. Returns the
    per-epoch history."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if optimiser == "sgd":
        optimiser = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    else:
        optimiser = torch.optim.AdamW(groups, lr=lr)
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=total, pct_start=0.15)
    history, step, started = [], 0, time.perf_counter()
    for epoch in range(epochs):
        model.train()
        losses = []
        for batch in batches(epoch, rng):
            if step >= total:
                break
            loss = loss_fn(model, batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimiser.step()
            schedule.step()
            step += 1
            losses.append(float(loss.detach()))
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)) if losses else math.nan,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if evaluate and eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            model.eval()
            row.update(evaluate(model, epoch + 1))
        history.append(row)
        log(json.dumps(row))
    model.eval()
    return history


# --------------------------------------------------------------------------- outputs
def save_weights(model, path: Path) -> str:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    return sha256_file(path)


def environment() -> dict:
    import PIL
    import torch
    import torchvision

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }


def write_card(name: str, card: dict, prose: str, folder: Path) -> Path:
    path = folder / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        f"# {name}\n\n{prose.strip()}\n\n## Record\n\nMachine-readable: `sysnoise.zoo.resnet.read_card` "
        f"parses this block into `LoadedModel.card`.\n\n```json\n{json.dumps(card, indent=1)}\n```\n"
    )
    path.write_text(text)
    return path


def _outputs(name: str, out: Path | None) -> tuple[Path, Path]:
    """(weights path, cards folder): the package's own zoo by default, or under `out`."""
    if out is None:
        return ZOO_DIR / "weights" / f"{name}.safetensors", ZOO_DIR / "cards"
    out = Path(out)
    return out / f"{name}.safetensors", out


# --------------------------------------------------------------------------- classifier
def read_list(list_file: Path) -> tuple[list[Path], np.ndarray]:
    dataset = read_list_file(Path(list_file))
    return [s.path for s in dataset.samples], np.array([s.labels[0] for s in dataset.samples], np.int64)


def classifier_top1(model, images: np.ndarray, labels: np.ndarray, pipeline: Pipeline, batch_size: int = 250) -> float:
    """Top-1 accuracy as a run scores it (sysnoise.tasks.classification: outputs, correct)."""
    import torch

    with torch.no_grad():
        topk = np.concatenate(
            [
                outputs_from_logits(model(to_tensor(images[i : i + batch_size], pipeline)))["topk"]
                for i in range(0, len(images), batch_size)
            ]
        )
    return float(correct(topk, labels[:, None]).mean())


@recipe("zoo-resnet")
def train_resnet(
    seed: int = 0,
    epochs: int | None = None,
    out: Path | None = None,
    *,
    pipeline: Pipeline | Sequence[Pipeline] | None = None,
    n_train: int | None = None,
    batch_size: int = 32,
    lr: float = 2e-3,
    log: Callable[[str], None] = print,
    model: str = "zoo-resnet",
    name: str | None = None,
    init: str | None = None,
) -> dict:
    """Train a scenes classifier of geometry `model` (zoo-resnet, zoo-resnet7), saved as `name`
    (default: the model's). `pipeline` is the training system (default: the model's declared
    reference); the val metric is always measured under the reference pipeline."""
    import torch

    set_threads()
    epochs = epochs or 8
    name = name or model
    shape = resnet.geometry(model)
    reference = resnet.reference_pipeline(model)
    train_system = pipeline or reference
    started = time.perf_counter()
    train_list, val_list = DATASETS("scenes-train")(n=n_train), DATASETS("scenes")()
    train_paths, train_labels = read_list(train_list)
    val_paths, val_labels = read_list(val_list)
    train_images = pipeline_pixels(train_paths, train_system, seed=seed)
    val_images = pipeline_pixels(val_paths, reference)
    log(
        f"data: {len(train_paths)} train, {len(val_paths)} val images through the pipeline "
        f"({time.perf_counter() - started:.0f} s)"
    )
    norm = train_system if isinstance(train_system, Pipeline) else train_system[0]

    torch.manual_seed(seed)
    net = resnet.build(len(scenes.CLASSES), model)
    backbone = encoder_state(init, keep_fc=True)
    fresh: list[str] = []
    if backbone is not None:  # another zoo model's body, or an earlier version of this one to train further
        backbone, fresh = matching_state(net, backbone)
        net.load_state_dict(backbone, strict=False)
    steps = len(train_paths) // batch_size

    def batches(epoch, rng):
        order = rng.permutation(len(train_paths))
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            x = dihedral(to_tensor(train_images[idx], norm), int(rng.integers(8)))
            yield x, torch.from_numpy(train_labels[idx])

    def loss_fn(module, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(module(x), y, label_smoothing=0.05)

    def evaluate(module, epoch):
        return {"val_top1": round(classifier_top1(module, val_images, val_labels, reference), 4)}

    history = fit(
        net,
        batches,
        loss_fn,
        epochs=epochs,
        steps_per_epoch=steps,
        lr=lr,
        seed=seed,
        log=log,
        evaluate=evaluate,
        eval_every=4,
    )
    top1 = classifier_top1(net, val_images, val_labels, reference)
    subset = classifier_top1(net, val_images[:REFERENCE_SUBSET], val_labels[:REFERENCE_SUBSET], reference)
    net.maxpool.ceil_mode = True
    top1_ceil = classifier_top1(net, val_images, val_labels, reference)
    net.maxpool.ceil_mode = False
    weights, cards = _outputs(name, out)
    # continuing a model from its own weights: its card's earlier stages stay on record
    earlier = earlier_stages(cards / f"{name}.md") if init == name else []
    command = train_command(name, seed, epochs, init, n_train)
    sha = save_weights(net, weights)
    card = {
        "name": name,
        "task": "classification",
        "architecture": shape.describe(),
        "feature_maps": {"floor": list(shape.map_sizes()), "ceil": list(shape.map_sizes(ceil_mode=True))},
        "parameters": sum(p.numel() for p in net.parameters()),
        "classes": list(scenes.CLASSES),
        "training_system": train_system.to_dict()
        if isinstance(train_system, Pipeline)
        else [p.to_dict() for p in train_system],
        "reference_pipeline": reference.to_dict(),
        "data": {
            "train": "scenes-train",
            "val": "scenes",
            "seed": 0,
            "n_train": len(train_paths),
            "n_val": len(val_paths),
            "train_fingerprint": json.loads((train_list.parent / "dataset.json").read_text()),
            "val_fingerprint": json.loads((val_list.parent / "dataset.json").read_text()),
        },
        "recipe": {
            "command": command,
            "seed": seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "optimiser": "AdamW, one-cycle",
            "max_lr": lr,
            "weight_decay": 0.05,
            "label_smoothing": 0.05,
            "init": init_record(init, backbone, fresh),
            "augmentation": "random flip / 90-degree rotation of the pipeline output (exact pixel permutation)",
        },
        "metrics": {
            "val_top1": round(top1, 4),
            f"val_top1_first{REFERENCE_SUBSET}": round(subset, 4),
            "val_top1_maxpool_ceil": round(top1_ceil, 4),
        },
        "reference_metric": {
            "metric": "top1",
            "split": "scenes (val)",
            "subset": REFERENCE_SUBSET,
            "value": round(subset, 4),
            "tolerance": 0.005,
        },
        "history": history,
        "train_seconds": round(time.perf_counter() - started),
        "environment": environment(),
        "weights_sha256": sha,
    }
    card["recipe"]["stages"] = earlier + [stage_record(card)]
    write_card(name, card, classifier_prose(card, shape, model), cards)
    log(f"val top-1 {top1:.4f} (ceil mode {top1_ceil:.4f}); wrote {weights}")
    return card


recipe("zoo-resnet7")(partial(train_resnet, model="zoo-resnet7"))


def train_command(name: str, seed: int, epochs: int, init: str | None, n_train: int | None) -> str:
    """The `sysnoise train-zoo` command line that reproduces a training run, for its card."""
    command = f"sysnoise train-zoo {name} --seed {seed} --epochs {epochs} --init {init or 'none'}"
    return command + (f" --n-train {n_train}" if n_train is not None else "")


def stage_record(card: dict) -> dict:
    """One training stage as the card's `recipe.stages` keeps it."""
    return {
        "command": card["recipe"]["command"],
        "n_train": card["data"]["n_train"],
        "metrics": card["metrics"],
        "history": card["history"],
        "train_seconds": card["train_seconds"],
        "weights_sha256": card["weights_sha256"],
    }


def earlier_stages(card_path: Path) -> list[dict]:
    """The stages recorded on an existing card (none if there is no card)."""
    if not card_path.is_file():
        return []
    text = card_path.read_text()
    start = text.find("```json\n")
    card = json.loads(text[start + 8 : text.find("```", start + 8)])
    stages = card["recipe"].get("stages", [])
    if all(isinstance(stage, dict) for stage in stages) and stages:
        return stages
    # cards written before stages were records: `stage1` held the first, the card itself the last
    first = card["recipe"].get("stage1")
    first = [{"n_train": card["data"]["n_train"], **first}] if first else []
    return first + [stage_record(card)]


def describe_stages(stages: list[dict]) -> str:
    return "\n".join(
        f"{i}. `{stage['command']}` ({stage['n_train']} training images): val top-1 "
        f"{100 * stage['metrics']['val_top1']:.2f} %"
        for i, stage in enumerate(stages, 1)
    )


REFERENCE_SUBSET = 500  # classifier: the test re-measures top-1 on the first 500 val images
DENSE_REFERENCE_SUBSET = 200  # detector, segmenter: first 200 val images


def classifier_prose(card: dict, shape, model: str) -> str:
    """The card's prose for a zoo classifier: its stages, training system, geometry and result."""
    floor, ceil = shape.map_sizes(), shape.map_sizes(ceil_mode=True)
    stem = f"{shape.stem_kernel}x{shape.stem_kernel} stride-{shape.stem_stride} conv"
    new_cells = ceil[-1] ** 2 - floor[-1] ** 2
    metrics = card["metrics"]
    role = (
        "Its body is the starting point of zoo-detector and zoo-segmenter, so train it first."
        if model == "zoo-resnet"
        else _GEOMETRY_WHY.get(model, "")
    )
    return _CLASSIFIER_PROSE.format(
        stages=describe_stages(card["recipe"]["stages"]),
        role=role,
        size=shape.input_size,
        stem=stem,
        floor=" / ".join(map(str, floor)),
        ceil=" / ".join(map(str, ceil)),
        last=floor[-1],
        last_ceil=ceil[-1],
        new=new_cells,
        cells=ceil[-1] ** 2,
        top1=100 * metrics["val_top1"],
        epochs=card["recipe"]["epochs"],
        minutes=card["train_seconds"] / 60,
        threads=card["environment"]["threads"],
        all_minutes=sum(stage["train_seconds"] for stage in card["recipe"]["stages"]) / 60,
        top1_ceil=100 * metrics["val_top1_maxpool_ceil"],
        nv=card["data"]["n_val"],
        name=card["name"],
    )


_GEOMETRY_WHY = {
    "zoo-resnet7": (
        "Its geometry is ResNet-50's at 224 px where the ceil-mode noise acts: a final 7x7 map that ceil "
        "mode makes 8x8, so 15 of the 64 globally pooled cells are new (zoo-resnet: 2x2 -> 3x3, 5 of 9). "
        "To afford a 7x7 final map on 80 px scenes with a CPU budget it has a stride-1 3x3 stem and a "
        "stride-1 last stage (total stride 8, ResNet-50's 32); the max-pool is ResNet's (3x3, stride 2, "
        "padding 1, floor mode)."
    )
}

_CLASSIFIER_PROSE = """
A small ResNet-style classifier for the `scenes` data set (10 shape classes pasted on real
photographs; see `sysnoise.zoo.scenes`), trained on this project's CPU, each stage a one-cycle
schedule starting from the weights named in its command:
{stages}

{role}

* **Training system (the reference pipeline)**: JPEG (Pillow, quality 90, 4:2:0) decoded by
  Pillow, RGB, Pillow bilinear resize 80 -> {size}, ImageNet mean/std, FP32, torch eager,
  max-pool in floor mode. Training images went through the project's own pipeline functions.
* **Geometry**: {stem} stem, 3x3/2 max-pool; feature maps (stem, pool, stages) {floor} in floor
  mode, {ceil} in ceil mode: the final {last}x{last} map becomes {last_ceil}x{last_ceil}, {new} of
  its {cells} globally pooled cells new.
* **Data**: the first N images of scenes-train (seed 0; N per stage above); evaluated on
  scenes val ({nv} images, seed 0).
* **Cost**: the last stage {epochs} epochs, {minutes:.1f} min wall time ({threads} thread(s),
  data preparation and evaluation included); all stages {all_minutes:.1f} min.
* **Result**: val top-1 {top1:.2f} % under the reference pipeline; {top1_ceil:.2f} % with the
  max-pool switched to ceil mode.
* **Use**: `sysnoise run --model {name} --data scenes`.
"""


# --------------------------------------------------------------------------- detection / segmentation data
def detection_split(folder: Path) -> tuple[list[Path], list[dict], dict]:
    """(image paths, per-image {'boxes': xyxy float32 (n, 4) in file pixels, 'labels'}, the ground
    truth as COCOeval reads it), read by the detection task's reader."""
    data = read_detection_data(folder)
    per_image: dict[int, tuple[list, list]] = {s.image_id: ([], []) for s in data.samples}
    for ann in data.coco["annotations"]:
        x, y, w, h = ann["bbox"]
        boxes, labels = per_image[ann["image_id"]]
        boxes.append([x, y, x + w, y + h])
        labels.append(ann["category_id"])
    targets = [
        {
            "boxes": np.array(per_image[s.image_id][0], np.float32).reshape(-1, 4),
            "labels": np.array(per_image[s.image_id][1], np.int64),
        }
        for s in data.samples
    ]
    return [s.path for s in data.samples], targets, data.coco


def dihedral_boxes(boxes, k: int, size: float):
    """xyxy boxes moved as `dihedral(image, k)` moves the pixels of a size x size image."""
    import torch

    b = boxes.clone()
    if k & 4:
        b = torch.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], 1)
    for _ in range(k & 3):  # rot90 counter-clockwise: (x, y) -> (y, size - x)
        b = torch.stack([b[:, 1], size - b[:, 2], b[:, 3], size - b[:, 0]], 1)
    return b


def detections(model, images: np.ndarray, pipeline: Pipeline, batch_size: int = 16) -> list[dict]:
    """Model outputs (boxes xyxy in input pixels, scores, labels) as numpy, one dict per image."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = to_tensor(images[i : i + batch_size], pipeline)
            for det in model(list(x)):
                out.append({k: v.numpy() for k, v in det.items()})
    return out


def coco_map(coco: dict, dets: list[dict], scale: float, image_ids: Sequence[int] | None = None) -> dict:
    """COCO box mAP of detections in input pixels, scaled by `scale` to file pixels, as a run
    scores it (sysnoise.analysis.detection.coco_eval)."""
    ids = list(image_ids) if image_ids is not None else [img["id"] for img in coco["images"]]
    results = detections_json(
        [d["boxes"] * scale for d in dets], [d["scores"] for d in dets], [d["labels"] for d in dets], ids
    )
    stats = coco_eval(ground_truth(coco), results, ids).stats
    return {
        "mAP": round(float(stats[0]), 4),
        "AP50": round(float(stats[1]), 4),
        "AP75": round(float(stats[2]), 4),
        "AP_small": round(float(stats[3]), 4),
        "AP_medium": round(float(stats[4]), 4),
    }


def encoder_state(source: str | None = "zoo-resnet", keep_fc: bool = False) -> dict | None:
    """ZooResNet body weights to start from: zoo-resnet's body (default), the segmenter's encoder,
    or None (random init)."""
    if source is None or source == "none":
        return None
    path = Path(source) if source.endswith(".safetensors") else weights_path(source)
    if not path.is_file():
        return None
    state = load_state_dict(path)
    if any(k.startswith("backbone.body.") for k in state):  # a zoo-detector
        state = {k[len("backbone.body.") :]: v for k, v in state.items() if k.startswith("backbone.body.")}
    elif any(k.startswith("backbone.") for k in state):  # a zoo-segmenter
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    return {k: v for k, v in state.items() if keep_fc or not k.startswith("fc.")}


def _own_state(init: str | None, name: str) -> dict | None:
    """The whole state of an earlier version of model `name` when `init` names it (or its file)."""
    if init is None or not (init == name or init.endswith(f"{name}.safetensors")):
        return None
    path = Path(init) if init.endswith(".safetensors") else weights_path(name)
    return load_state_dict(path) if path.is_file() else None


def init_record(source: str | None, state: dict | None, fresh: Sequence[str] = ()) -> dict | str:
    """What a model started from, for its card: the source, the digest of the tensors taken, and
    the tensors that started random instead (their shape differs from the source's)."""
    if state is None:
        return "random"
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].numpy().tobytes())
    record = {"from": str(source), "tensors_sha256": h.hexdigest()}
    return {**record, "random": list(fresh)} if fresh else record


def matching_state(module, state: dict) -> tuple[dict, list[str]]:
    """(the tensors of `state` that fit `module` by name and shape, the names of the module's
    tensors left at their random start). A tensor `module` lacks is a wrong source: refused."""
    own = module.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"initial weights name tensors the model lacks: {unknown[:5]}")
    taken = {k: v for k, v in state.items() if own[k].shape == v.shape}
    return taken, sorted(set(own) - set(taken))


@recipe("zoo-detector")
def train_detector(
    seed: int = 0,
    epochs: int | None = None,
    out: Path | None = None,
    *,
    pipeline: Pipeline | Sequence[Pipeline] | None = None,
    n_train: int | None = None,
    batch_size: int = 8,
    lr: float = 2e-3,
    log: Callable[[str], None] = print,
    name: str = "zoo-detector",
    init: str | None = "zoo-resnet",
) -> dict:
    import torch

    set_threads()
    epochs = epochs or 12
    reference = detector.reference_pipeline()
    train_system = pipeline or reference
    norm = train_system if isinstance(train_system, Pipeline) else train_system[0]
    started = time.perf_counter()
    train_folder = scenes.materialise("detection", "train", n=n_train)
    val_folder = scenes.materialise("detection", "val")
    train_paths, train_targets, _ = detection_split(train_folder)
    val_paths, _, val_coco = detection_split(val_folder)
    train_images = pipeline_pixels(train_paths, train_system, seed=seed)
    val_images = pipeline_pixels(val_paths, reference)
    file_size = scenes.CONFIGS["detection"].size
    size = detector.INPUT_SIZE
    log(f"data: {len(train_paths)} train, {len(val_paths)} val images ({time.perf_counter() - started:.0f} s)")

    torch.manual_seed(seed)
    itself = _own_state(init, name)
    backbone = itself if itself is not None else encoder_state(init)
    model = detector.build(len(scenes.CLASSES) + 1, None if itself is not None else backbone)
    if itself is not None:  # train an earlier zoo-detector further
        model.load_state_dict(itself)
    if backbone is not None:  # as torchvision does with pretrained backbones: the stem stays fixed
        for key, param in model.backbone.body.named_parameters():
            if key.startswith(("conv1.", "bn1.", "layer1.")):
                param.requires_grad_(False)
    steps = len(train_paths) // batch_size
    boxes = [torch.from_numpy(t["boxes"] * (size / file_size)) for t in train_targets]
    labels = [torch.from_numpy(t["labels"]) for t in train_targets]

    def batches(epoch, rng):
        order = rng.permutation(len(train_paths))
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            k = int(rng.integers(8))
            x = dihedral(to_tensor(train_images[idx], norm), k)
            targets = [{"boxes": dihedral_boxes(boxes[j], k, size), "labels": labels[j]} for j in idx]
            yield list(x), targets

    def loss_fn(model, batch):
        losses = model(*batch)
        return sum(losses.values())

    subset = min(DENSE_REFERENCE_SUBSET, len(val_paths))
    ids = [img["id"] for img in val_coco["images"]]

    def evaluate(model, epoch):
        dets = detections(model, val_images[:subset], reference)
        return {"val_subset_mAP": coco_map(val_coco, dets, file_size / size, ids[:subset])["mAP"]}

    history = fit(
        model,
        batches,
        loss_fn,
        epochs=epochs,
        steps_per_epoch=steps,
        lr=lr,
        seed=seed,
        log=log,
        evaluate=evaluate,
        eval_every=2,
    )
    dets = detections(model, val_images, reference)
    metrics = coco_map(val_coco, dets, file_size / size)
    sub = coco_map(val_coco, dets[:subset], file_size / size, ids[:subset])
    ceil_model = __import__("copy").deepcopy(model)
    for m in ceil_model.modules():
        if isinstance(m, torch.nn.MaxPool2d):
            m.ceil_mode = True
    metrics_ceil = coco_map(val_coco, detections(ceil_model, val_images, reference), file_size / size)
    weights, cards = _outputs(name, out)
    command = train_command(name, seed, epochs, init, n_train)
    sha = save_weights(model, weights)
    card = {
        "name": name,
        "task": "detection",
        "architecture": "torchvision FasterRCNN; BackboneWithFPN over the zoo ResNet body (layer1-4, FPN 48 ch, "
        "nearest top-down upsampling, LastLevelMaxPool); anchors 16-96 px x (0.5, 1, 2); RoIAlign 7x7 sampling 1; TwoMLPHead 128",
        "parameters": sum(p.numel() for p in model.parameters()),
        "classes": ["background", *scenes.CLASSES],
        "label_ids": "label = COCO category_id (1..10); 0 background",
        "box_coordinates": f"xyxy in the {size}x{size} model input; x {file_size}/{size} for file pixels",
        "training_system": train_system.to_dict()
        if isinstance(train_system, Pipeline)
        else [p.to_dict() for p in train_system],
        "reference_pipeline": reference.to_dict(),
        "data": {
            "train": "scenes-det-train",
            "val": "scenes-det",
            "seed": 0,
            "n_train": len(train_paths),
            "n_val": len(val_paths),
            "val_fingerprint": json.loads((val_folder / "dataset.json").read_text()),
        },
        "recipe": {
            "command": command,
            "seed": seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "optimiser": "AdamW, one-cycle",
            "max_lr": lr,
            "weight_decay": 0.05,
            "init": init_record(init, backbone),
            "frozen": "conv1, bn1, layer1 of the body" if backbone is not None else "nothing",
            "augmentation": "random flip / 90-degree rotation of the pipeline output and the boxes",
        },
        "metrics": {
            "val_mAP": metrics["mAP"],
            "val_AP50": metrics["AP50"],
            "val_AP75": metrics["AP75"],
            "val_AP_small": metrics["AP_small"],
            "val_AP_medium": metrics["AP_medium"],
            f"val_mAP_first{subset}": sub["mAP"],
            "val_mAP_maxpool_ceil": metrics_ceil["mAP"],
        },
        "reference_metric": {
            "metric": "COCO box mAP@[.5:.95] (pycocotools)",
            "split": "scenes-det (val)",
            "subset": subset,
            "value": sub["mAP"],
            "tolerance": 0.01,
        },
        "history": history,
        "train_seconds": round(time.perf_counter() - started),
        "environment": environment(),
        "weights_sha256": sha,
    }
    write_card(
        name,
        card,
        _DETECTOR_PROSE.format(
            m=metrics, ceil=metrics_ceil["mAP"], epochs=epochs, seed=seed, n=len(train_paths), nv=len(val_paths)
        ),
        cards,
    )
    log(f"val mAP {metrics['mAP']:.4f} (ceil mode {metrics_ceil['mAP']:.4f}); wrote {weights}")
    return card


_DETECTOR_PROSE = """
Faster R-CNN (torchvision) with a feature pyramid network on the zoo ResNet body, the body
initialised from zoo-resnet's weights, trained on this project's CPU with
`sysnoise train-zoo zoo-detector --seed {seed} --epochs {epochs}`.

* **Training system (the reference pipeline)**: JPEG (Pillow, quality 90, 4:2:0) decoded by
  Pillow, RGB, Pillow bilinear resize 128 -> 96, ImageNet mean/std, FP32, torch eager,
  max-pool in floor mode, FPN top-down upsampling `nearest` (torchvision's FPN). The model's
  own transform is an identity (mean 0, std 1, min/max size 96).
* **Data**: scenes-det-train ({n} images of 1-4 shapes, seed 0); evaluated on scenes-det
  val ({nv} images) with pycocotools COCOeval (boxes).
* **Result**: val box mAP@[.5:.95] {m[mAP]:.3f}, AP50 {m[AP50]:.3f}, AP75 {m[AP75]:.3f};
  with the max-pool in ceil mode {ceil:.3f} (the anchor strides follow the grown maps).
* Boxes are in 96x96 input pixels; multiply by 128/96 for the annotation file's pixels.
"""


def segmentation_scores(
    model, images: np.ndarray, label_maps: np.ndarray, pipeline: Pipeline, num_classes: int, batch_size: int = 32
) -> dict:
    """mIoU (and pixel accuracy) of argmax predictions upsampled to the label maps' size, 255 ignored."""
    import torch
    import torch.nn.functional as F

    confusion = np.zeros((num_classes, num_classes), np.int64)
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            logits = model(to_tensor(images[i : i + batch_size], pipeline))
            target = label_maps[i : i + batch_size]
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
            pred = logits.argmax(1).numpy()
            keep = target != IGNORE
            confusion += np.bincount(
                target[keep].astype(np.int64) * num_classes + pred[keep], minlength=num_classes**2
            ).reshape(num_classes, num_classes)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return {
        "mIoU": round(float(np.nanmean(iou)), 4),
        "pixel_accuracy": round(float(inter.sum() / confusion.sum()), 4),
        "iou": [round(float(v), 4) for v in iou],
    }


def read_label_maps(folder: Path) -> tuple[list[Path], np.ndarray]:
    from PIL import Image

    lines = (folder / "segmentation.txt").read_text().split("\n")
    pairs = [line.split() for line in lines if line.strip()]
    maps = np.stack([np.asarray(Image.open(folder / label)) for _, label in pairs])
    return [folder / image for image, _ in pairs], maps


@recipe("zoo-segmenter")
def train_segmenter(
    seed: int = 0,
    epochs: int | None = None,
    out: Path | None = None,
    *,
    pipeline: Pipeline | Sequence[Pipeline] | None = None,
    n_train: int | None = None,
    batch_size: int = 16,
    lr: float = 3e-3,
    log: Callable[[str], None] = print,
    name: str = "zoo-segmenter",
    init: str | None = "zoo-resnet",
) -> dict:
    import torch
    import torch.nn.functional as F

    set_threads()
    epochs = epochs or 15
    reference = segmenter.reference_pipeline()
    train_system = pipeline or reference
    norm = train_system if isinstance(train_system, Pipeline) else train_system[0]
    started = time.perf_counter()
    train_folder = scenes.materialise("detection", "train", n=n_train)
    val_folder = scenes.materialise("detection", "val")
    train_paths, train_maps = read_label_maps(train_folder)
    val_paths, val_maps = read_label_maps(val_folder)
    train_images = pipeline_pixels(train_paths, train_system, seed=seed)
    val_images = pipeline_pixels(val_paths, reference)
    log(f"data: {len(train_paths)} train, {len(val_paths)} val images ({time.perf_counter() - started:.0f} s)")
    num_classes = len(scenes.CLASSES) + 1

    torch.manual_seed(seed)
    itself = _own_state(init, name)
    backbone = itself if itself is not None else encoder_state(init)
    model = segmenter.build(num_classes, None if itself is not None else backbone)
    if itself is not None:  # train an earlier zoo-segmenter further
        model.load_state_dict(itself)
    steps = len(train_paths) // batch_size
    maps = torch.from_numpy(train_maps.astype(np.int64))

    def batches(epoch, rng):
        order = rng.permutation(len(train_paths))
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            k = int(rng.integers(8))
            yield dihedral(to_tensor(train_images[idx], norm), k), dihedral(maps[idx], k)

    def loss_fn(model, batch):
        x, y = batch
        logits = F.interpolate(model(x), size=y.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(logits, y, ignore_index=scenes.IGNORE)

    subset = min(DENSE_REFERENCE_SUBSET, len(val_paths))

    def evaluate(model, epoch):
        return {
            "val_subset_mIoU": segmentation_scores(
                model, val_images[:subset], val_maps[:subset], reference, num_classes
            )["mIoU"]
        }

    history = fit(
        model,
        batches,
        loss_fn,
        epochs=epochs,
        steps_per_epoch=steps,
        lr=lr,
        seed=seed,
        log=log,
        evaluate=evaluate,
        eval_every=2,
    )
    scores = segmentation_scores(model, val_images, val_maps, reference, num_classes)
    sub = segmentation_scores(model, val_images[:subset], val_maps[:subset], reference, num_classes)
    model.backbone.maxpool.ceil_mode = True
    ceil_scores = segmentation_scores(model, val_images, val_maps, reference, num_classes)
    model.backbone.maxpool.ceil_mode = False
    weights, cards = _outputs(name, out)
    command = train_command(name, seed, epochs, init, n_train)
    sha = save_weights(model, weights)
    card = {
        "name": name,
        "task": "segmentation",
        "architecture": "U-Net-style: zoo ResNet encoder (layer1-4), top-down decoder (48 ch) upsampling to each "
        "skip's size (bilinear), 1x1 classifier at stride 4, bilinear upsampling to the input size",
        "parameters": sum(p.numel() for p in model.parameters()),
        "classes": ["background", *scenes.CLASSES],
        "ignore_index": scenes.IGNORE,
        "training_system": train_system.to_dict()
        if isinstance(train_system, Pipeline)
        else [p.to_dict() for p in train_system],
        "reference_pipeline": reference.to_dict(),
        "data": {
            "train": "scenes-seg-train",
            "val": "scenes-seg",
            "seed": 0,
            "n_train": len(train_paths),
            "n_val": len(val_paths),
            "val_fingerprint": json.loads((val_folder / "dataset.json").read_text()),
        },
        "recipe": {
            "command": command,
            "seed": seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "optimiser": "AdamW, one-cycle",
            "max_lr": lr,
            "weight_decay": 0.05,
            "init": init_record(init, backbone),
            "loss": "cross-entropy on logits upsampled to 128x128, ignore 255",
            "augmentation": "random flip / 90-degree rotation of the pipeline output and the label map",
        },
        "metrics": {
            "val_mIoU": scores["mIoU"],
            "val_pixel_accuracy": scores["pixel_accuracy"],
            "val_iou_per_class": scores["iou"],
            f"val_mIoU_first{subset}": sub["mIoU"],
            "val_mIoU_maxpool_ceil": ceil_scores["mIoU"],
        },
        "reference_metric": {
            "metric": "mIoU over 11 classes (background included), 255 ignored, at 128x128",
            "split": "scenes-seg (val)",
            "subset": subset,
            "value": sub["mIoU"],
            "tolerance": 0.005,
        },
        "history": history,
        "train_seconds": round(time.perf_counter() - started),
        "environment": environment(),
        "weights_sha256": sha,
    }
    write_card(
        name,
        card,
        _SEGMENTER_PROSE.format(
            s=scores, ceil=ceil_scores["mIoU"], epochs=epochs, seed=seed, n=len(train_paths), nv=len(val_paths)
        ),
        cards,
    )
    log(f"val mIoU {scores['mIoU']:.4f} (ceil mode {ceil_scores['mIoU']:.4f}); wrote {weights}")
    return card


_SEGMENTER_PROSE = """
A U-Net-style encoder-decoder on the zoo ResNet body, the encoder initialised from zoo-resnet's
weights, trained on this project's CPU with `sysnoise train-zoo zoo-segmenter --seed {seed} --epochs {epochs}`.

* **Training system (the reference pipeline)**: JPEG (Pillow, quality 90, 4:2:0) decoded by
  Pillow, RGB, Pillow bilinear resize 128 -> 96, ImageNet mean/std, FP32, torch eager,
  max-pool in floor mode, decoder upsampling bilinear.
* **Data**: the scenes-det images with their PNG label maps (scenes-seg-train, {n} images;
  val {nv} images); 11 classes (background + 10 shapes), 255 = ignore (one-pixel boundary band).
* **Result**: val mIoU {s[mIoU]:.3f} (pixel accuracy {s[pixel_accuracy]:.3f}), logits
  upsampled bilinearly to the 128x128 label maps; with the max-pool in ceil mode {ceil:.3f}.
"""


def train(name: str, **kwargs) -> dict:
    """Run recipe `name` (see RECIPES); kwargs left as None take the recipe's defaults."""
    return RECIPES[name](**{k: v for k, v in kwargs.items() if v is not None})
