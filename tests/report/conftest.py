"""A stored run built without a model: real results (build_results, add_combined), real figures
from real JPEGs, from outputs whose predictions follow a known rule.

Rule: 30 samples, the first 20 labeled (class i % 3), the last 10 unlabeled. The reference is
right on labeled samples 0..15. Each (field, option) away from the reference moves the top-1 of
a fixed set of samples to the next class.
"""

from pathlib import Path

import numpy as np
import pytest

from sysnoise.analysis import combine
from sysnoise.analysis.classification import ClassificationAnalysis
from sysnoise.analysis.document import add_combined, build_results
from sysnoise.engine.outputs import RunOutputs
from sysnoise.engine.plan import Plan
from sysnoise.noises import get_noise
from sysnoise.pipeline.spec import Pipeline
from sysnoise.report.figures import Measured, make_figures
from sysnoise.report.results import write_reports, write_results

N, LABELED, CLASSES = 30, 20, 3
CLASS_NAMES = ["cat", "dog", "<b>bird</b>"]  # markup in a name must come out escaped
REFERENCE = Pipeline(input_size=32)
MOVES = {
    ("decoder", "opencv"): set(),  # no flips: an all-zero noise
    ("resize", "opencv-nearest"): {0, 1, 2, 3, 4, 5, 25},  # 6 right -> wrong (p = 2/2**6), one unlabeled flip
    ("resize", "pillow-box"): {17},  # wrong -> right (17 is labeled, reference wrong there)
    ("precision", "fp16"): {6, 26},
    ("colour", "bgr"): {7, 8},  # the channel-order configuration error
}
SINGLE = {
    "decoder": ["opencv"],
    "resize": ["opencv-nearest", "pillow-box"],
    "precision": ["fp16"],
    "channel-order": ["bgr"],
}
NOISE_ROWS = [
    {"name": "decoder", "stage": "pre-processing", "description": "decoder library", "applies": True},
    {"name": "resize", "stage": "pre-processing", "description": "resize kernel", "applies": True},
    {"name": "precision", "stage": "inference", "description": "numeric precision", "applies": True},
    {"name": "channel-order", "stage": "misconfiguration", "description": "RGB fed as BGR", "applies": True},
    {"name": "ceil-mode", "stage": "inference", "description": "max-pool ceil mode", "applies": False},
]
ENVIRONMENT = {
    "python": "3.11",
    "platform": "test",
    "cpu": "test cpu",
    "cuda": None,
    "libraries": {"numpy": np.__version__, "absent": None},
    "decoder_libraries": {"Pillow": {"jpg": "9"}},
}


def toy_outputs(plan: Plan, labeled: int = LABELED) -> RunOutputs:
    truth = np.arange(N) % CLASSES
    labels = np.where(np.arange(N) < labeled, truth, -1)[:, None]
    reference_top1 = np.where(np.arange(N) < 16, truth, (truth + 1) % CLASSES)
    reference_top1[np.arange(N) >= LABELED] = truth[np.arange(N) >= LABELED]
    arrays, errors = {}, {}
    for column in plan.columns:
        top1 = reference_top1.copy()
        for field, (_, value) in REFERENCE.diff(column.pipeline).items():
            moved = sorted(MOVES[(field, value)])
            top1[moved] = np.where(reference_top1[moved] == truth[moved], (truth[moved] + 1) % CLASSES, truth[moved])
        topk = np.stack([(top1 + k) % CLASSES for k in range(5)], axis=1).astype(np.int32)
        arrays[column.id] = {"topk": topk, "prob": np.tile(np.float32([0.6, 0.3, 0.1, 0, 0]), (N, 1))}
        errors[column.id] = np.full(N, "", dtype=str)
    return RunOutputs([c.id for c in plan.columns], [f"img{i:02d}.jpg" for i in range(N)], labels, arrays, errors)


def write_images(folder: Path) -> dict[str, Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}
    for i in range(N):
        y, x = np.mgrid[0:40, 0:50]
        image = np.stack([x * 5, y * 6, (x * y) % 256], -1).astype(np.uint8)
        image[8:20, 10:30] = rng.integers(0, 255, 3)
        paths[f"img{i:02d}.jpg"] = folder / f"img{i:02d}.jpg"
        Image.fromarray(image).save(paths[f"img{i:02d}.jpg"], quality=85)
    return paths


def build_run(
    folder: Path,
    *,
    model: str = "toy-net",
    stepwise=True,
    deploy=True,
    figures=True,
    reports=True,
    labeled: int = LABELED,
) -> dict:
    variants = [v for name, options in SINGLE.items() for v in get_noise(name).variants(REFERENCE, options)]
    plan = Plan(REFERENCE, tuple(variants))
    outputs = toy_outputs(plan, labeled)
    results = build_results(
        task="classification",
        analysis=ClassificationAnalysis(),
        model={"name": model, "weights_sha256": model},
        plan=plan,
        outputs=outputs,
        dataset={"path": str(folder / "images"), "kind": "listfile", "n_samples": N, "n_labeled": labeled},
        noises=NOISE_ROWS,
        environment=ENVIRONMENT,
        run={},
        problems=[],
    )
    measured = [Measured(c, outputs) for c in plan.columns[1:]]
    steps = combine.choose_steps(results, "greedy") if stepwise else []
    deployment = REFERENCE.replace(resize="opencv-nearest", precision="fp16") if deploy else None
    extra = combine.stepwise_variants(REFERENCE, steps)
    extra += combine.deploy_variants(REFERENCE, deployment) if deployment else []
    if extra:
        combined_plan = Plan(REFERENCE, tuple(extra))
        combined = toy_outputs(combined_plan, labeled)
        add_combined(
            results, combined_plan, combined, ClassificationAnalysis(), steps=steps, order="greedy", deploy=deployment
        )
        measured += [Measured(c, combined) for c in combined_plan.columns[1:]]
    if figures:
        results["figures"] = make_figures(results, measured, write_images(folder / "images"), CLASS_NAMES, folder)
    write_results(results, folder / "results.json")
    if reports:
        write_reports(results, folder)
    return results


@pytest.fixture(scope="session")
def stored_run(tmp_path_factory) -> Path:
    """A results folder with results.json, figures/ and the three reports."""
    folder = tmp_path_factory.mktemp("run")
    build_run(folder)
    return folder
