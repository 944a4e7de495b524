"""Measure the inference noises on EfficientNet-Lite0 and the demo photos (docs/inference.md).

    .venv/bin/python benchmarks/inference_agreement.py [--native N] [--zoo-images M] [--out results/inference_agreement.json]

For each model stage: top-1 agreement with torch float32 eager, the largest logit difference, and
forward time (images/s, batch 16, after one warm-up batch). Calibration uses the held-out split a
run uses (the 10 photos with the lowest id hash), never an evaluated photo.

Emulated FP16/BF16 against native `.half()` / `.bfloat16()` (`--native N` Lite0 photos, native is
slow on a CPU; `--zoo-images M` scenes val images for each zoo model): top-1 agreement (per pixel
for the segmenter; the detector is compared on its FPN feature maps, as its proposals go through
NMS and are not paired) and mean / max absolute logit gap between each pair of float32, native,
the emulation (every operation's result rounded) and the previous leaf-only emulation (only
modules without children rounded), which is kept here to show what it missed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    from sysnoise import environment
    from sysnoise.inference import calibrate
    from sysnoise.inference.build import build_model
    from sysnoise.models import load_model
    from sysnoise.tasks.classification import read_dataset
    from sysnoise.zoo.photos import materialise

    parser = argparse.ArgumentParser()
    parser.add_argument("--native", type=int, default=44, help="Lite0 photos for the native FP16/BF16 comparison")
    parser.add_argument("--zoo-images", type=int, default=64, help="scenes val images per zoo model for the same")
    parser.add_argument("--out", default="results/inference_agreement.json")
    parser.add_argument("--stages", nargs="*", help="only these stages (precision or runtime names)")
    args = parser.parse_args()

    loaded = load_model("efficientnet_lite0")
    evaluation, held_out = calibrate.hold_out(read_dataset(materialise()).samples)
    calibration = calibrate.batches(held_out, loaded.reference)
    photos = torch.cat(calibrate.batches(evaluation, loaded.reference))
    model = loaded.module

    def timed(m, x, batch: int = 16):
        with torch.inference_mode():
            m(x[:batch])  # warm-up (and ORT/oneDNN first-call set-up)
            started = time.perf_counter()
            outs = [m(x[i : i + batch]) for i in range(0, len(x), batch)]
        speed = len(x) / (time.perf_counter() - started)
        if isinstance(outs[0], dict):  # the detector's FPN: one map per level
            return {k: torch.cat([o[k] for o in outs]).float() for k in outs[0]}, speed
        return torch.cat(outs).float(), speed

    fp32, fp32_speed = timed(model, photos)
    rows = {"fp32 torch": {"agreement": 1.0, "max_logit_diff": 0.0, "images_per_s": round(fp32_speed, 1)}}
    stages = (
        [("fp16", "torch"), ("bf16", "torch")]
        + [
            (p, "torch")
            for p in (
                "int8",
                "int8-percentile",
                "int8-entropy",
                "int8-mse",
                "int8-pertensor",
                "int8-asym",
                "int8-symact",
            )
        ]
        + [("fp32", r) for r in ("onnxruntime", "onnxruntime-int8-qdq", "onnxruntime-int8-qoperator", "torch-ao-int8")]
    )
    for precision, runtime in stages:
        name = precision if runtime == "torch" else runtime
        if args.stages and name not in args.stages:
            continue
        started = time.perf_counter()
        built = build_model(model, loaded.reference.replace(precision=precision, runtime=runtime), calibration)
        build_s = time.perf_counter() - started
        out, speed = timed(built, photos)
        rows[name] = {
            "agreement": float((out.argmax(1) == fp32.argmax(1)).float().mean()),
            "max_logit_diff": float((out - fp32).abs().max()),
            "images_per_s": round(speed, 1),
            "build_s": round(build_s, 1),
        }
        print(name, rows[name], flush=True)

    native = {}
    if args.native:
        native["efficientnet_lite0"] = native_agreement(model, photos[: args.native], timed)
    if args.zoo_images:
        native.update(zoo_native_agreement(args.zoo_images, timed))

    env = environment.describe()
    report = {
        "model": "efficientnet_lite0",
        "evaluation_photos": len(photos),
        "calibration_photos": len(held_out),
        "stages": rows,
        "native": native,
        "environment": {k: env[k] for k in ("cpu", "cpu_count", "torch_threads", "libraries")},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


def leaf_only(model, dtype):
    """The previous emulation, for comparison: weights, the input and leaf modules' outputs rounded."""
    import copy

    from sysnoise.inference.scoped import map_tensors, round_through

    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for tensor in list(rounded.parameters()) + list(rounded.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(round_through(tensor, dtype))
    for module in rounded.modules():
        if not list(module.children()):
            module.register_forward_hook(lambda _m, _i, out: map_tensors(out, lambda t: round_through(t, dtype)))
    rounded.register_forward_pre_hook(lambda _m, args: map_tensors(args, lambda t: round_through(t, dtype)))
    return rounded


def native_agreement(model, x, timed, features: bool = False) -> dict:
    """fp16 and bf16: top-1 agreement and mean / max |logit gap| between float32, native, the
    emulation and the leaf-only emulation. features: the output is a dict of feature maps (the
    detector's FPN), compared as one (N, D) row per image, without top-1."""
    from sysnoise.inference.precision import PRECISIONS

    def flatten(out):
        return torch.cat([level.flatten(1) for level in out.values()], 1) if features else out

    fp32 = flatten(timed(model, x)[0])
    out = {}
    for kind, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        started = time.perf_counter()
        emulated, emulated_speed = timed(PRECISIONS(kind)(model), x)
        real, real_speed = timed(PRECISIONS(f"{kind}-native")(model), x)
        results = {
            "fp32": fp32,
            "native": flatten(real),
            "emulated": flatten(emulated),
            "leaf-only": flatten(timed(leaf_only(model, dtype), x)[0]),
        }
        pairs = [
            ("emulated", "native"),
            ("emulated", "fp32"),
            ("native", "fp32"),
            ("leaf-only", "native"),
            ("leaf-only", "fp32"),
        ]
        row = {
            "images": len(x),
            "images_per_s_emulated": round(emulated_speed, 2),
            "images_per_s_native": round(real_speed, 2),
            "seconds": round(time.perf_counter() - started, 1),
        }
        for a, b in pairs:
            gap = (results[a].float() - results[b].float()).abs()
            row[f"mean_gap_{a}_vs_{b}"] = float(gap.mean())
            row[f"max_gap_{a}_vs_{b}"] = float(gap.max())
            if not features:
                same = results[a].argmax(1) == results[b].argmax(1)
                row[f"top1_{a}_vs_{b}"] = f"{int(same.sum())}/{same.numel()}"
        out[kind] = row
        print(kind, row, flush=True)
    return out


def zoo_native_agreement(n: int, timed) -> dict:
    """The same on each zoo model, on the first `n` scenes val images under its own reference."""
    from sysnoise.inference import calibrate
    from sysnoise.models import load_model
    from sysnoise.tasks.classification import read_dataset
    from sysnoise.zoo.datasets import resolve_dataset

    samples = read_dataset(resolve_dataset("scenes")).samples[:n]
    out = {}
    for name in ("zoo-resnet", "zoo-segmenter", "zoo-detector"):
        loaded = load_model(name)
        x = torch.cat(calibrate.batches(samples, loaded.reference))
        module = loaded.module.backbone if name == "zoo-detector" else loaded.module
        print(name, flush=True)
        out[name] = native_agreement(module, x, timed, features=name == "zoo-detector")
        if name == "zoo-detector":
            out[name]["compared"] = "FPN feature maps (backbone + FPN), top-1 not defined"
        elif name == "zoo-segmenter":
            out[name]["compared"] = "logits per pixel; top-1 = per-pixel argmax"
    return out


if __name__ == "__main__":
    main()
