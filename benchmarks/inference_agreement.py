"""Measure the inference noises on EfficientNet-Lite0 and the demo photos (docs/inference.md).

    .venv/bin/python benchmarks/inference_agreement.py [--native N] [--out results/inference_agreement.json]

For each model stage: top-1 agreement with torch float32 eager, the largest logit difference, and
forward time (images/s, batch 16, after one warm-up batch). Emulated FP16/BF16 are also compared
with native `.half()` / `.bfloat16()` on the first N evaluation photos (native is slow on a CPU).
Calibration uses the held-out split a run uses (the 10 photos with the lowest id hash), never an
evaluated photo.
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
    parser.add_argument("--native", type=int, default=16, help="photos for the native FP16/BF16 comparison")
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
            out = torch.cat([m(x[i : i + batch]) for i in range(0, len(x), batch)])
        return out.float(), len(x) / (time.perf_counter() - started)

    fp32, fp32_speed = timed(model, photos)
    rows = {"fp32 torch": {"agreement": 1.0, "max_logit_diff": 0.0, "images_per_s": round(fp32_speed, 1)}}
    stages = [("fp16", "torch"), ("bf16", "torch")] + [(p, "torch") for p in (
        "int8", "int8-percentile", "int8-entropy", "int8-mse", "int8-pertensor", "int8-asym", "int8-symact")] + [
        ("fp32", r) for r in ("onnxruntime", "onnxruntime-int8-qdq", "onnxruntime-int8-qoperator", "torch-ao-int8")]
    for precision, runtime in stages:
        name = precision if runtime == "torch" else runtime
        if args.stages and name not in args.stages:
            continue
        started = time.perf_counter()
        built = build_model(model, loaded.reference.replace(precision=precision, runtime=runtime), calibration)
        build_s = time.perf_counter() - started
        out, speed = timed(built, photos)
        rows[name] = {"agreement": float((out.argmax(1) == fp32.argmax(1)).float().mean()),
                      "max_logit_diff": float((out - fp32).abs().max()), "images_per_s": round(speed, 1),
                      "build_s": round(build_s, 1)}
        print(name, rows[name], flush=True)

    native = {}
    if args.native:
        x = photos[: args.native]
        reference = fp32[: args.native]
        for kind in ("fp16", "bf16"):
            emulated, emulated_speed = timed(build_model(model, loaded.reference.replace(precision=kind)), x)
            real, real_speed = timed(build_model(model, loaded.reference.replace(precision=f"{kind}-native")), x)
            native[kind] = {
                "photos": len(x),
                "emulated_vs_native_max_logit_diff": float((emulated - real).abs().max()),
                "emulated_vs_fp32_max_logit_diff": float((emulated - reference).abs().max()),
                "native_vs_fp32_max_logit_diff": float((real - reference).abs().max()),
                "top1_agreement_emulated_native": float((emulated.argmax(1) == real.argmax(1)).float().mean()),
                "top1_agreement_native_fp32": float((real.argmax(1) == reference.argmax(1)).float().mean()),
                "images_per_s_emulated": round(emulated_speed, 2), "images_per_s_native": round(real_speed, 2),
            }
            print(kind, native[kind], flush=True)

    env = environment.describe()
    report = {"model": "efficientnet_lite0", "evaluation_photos": len(photos), "calibration_photos": len(held_out),
              "stages": rows, "native": native,
              "environment": {k: env[k] for k in ("cpu", "cpu_count", "torch_threads", "libraries")}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
