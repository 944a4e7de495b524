"""Evaluate any torch.nn.Module under its training pipeline and the noises of a deployment, read
the results, and plot one noise. docs/api.md walks through it.

    python examples/evaluate_module.py DATA OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision

import sysnoise


def main(data: str, out: str) -> sysnoise.Results:
    # 1. Your model: any nn.Module mapping a (N, 3, H, W) float batch to (N, classes) logits.
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10)

    # 2. The pipeline it was trained with: what every delta is measured against.
    reference = sysnoise.Pipeline(resize="pillow-bicubic", input_size=64, crop_pct=0.875)
    wrapped = sysnoise.wrap_module(model, reference=reference)  # the class count is read from the output

    # 3. Measure: the reference and every option of the noises asked for, on your data.
    results = sysnoise.run(
        wrapped, data, noises=["resize", "decoder=opencv,ffmpeg", "precision=fp16"], out=out, figures=False
    )

    # 4. Read: the headline as attributes, every variant as a row.
    print(f"reference {results.metric}: {results.reference}")
    for variant, delta in results.deltas.items():
        print(f"{variant:32s} delta {delta}  flips {results.flip_rates[variant]:.1f}%")
    print(results.noise("resize")["summary"])

    # 5. Plot one noise: each resize option's flip rate with its 95% interval.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [v for v in results["variants"] if v["noise"] == "resize"]
    low = [v["flip_rate"] - v["flip_ci"][0] for v in rows]
    high = [v["flip_ci"][1] - v["flip_rate"] for v in rows]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.errorbar(range(len(rows)), [v["flip_rate"] for v in rows], yerr=[low, high], fmt="o", capsize=3)
    ax.set_xticks(range(len(rows)), [v["option"] for v in rows], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("flip rate, % (95% CI)")
    fig.tight_layout()
    fig.savefig(Path(out) / "resize.png", dpi=120)
    return results


if __name__ == "__main__":
    main(*sys.argv[1:3])
