"""The catalogue: every module that registers something (noise options, precisions, runtimes,
post-processing options, tasks, models, datasets) imported in one place, and the listing of
what is registered. Entry points (api, cli) import this module; nothing registers by being
imported from the bottom of another module.
"""

from __future__ import annotations

from sysnoise import noises
from sysnoise.inference import (  # noqa: F401
    executorch_runtime,
    lm_quant,
    lm_runtimes,
    ncnn_runtime,
    openvino_runtime,
    operators,
    precision,
    runtimes,
)
from sysnoise.loaded_model import MODELS
from sysnoise.pipeline import hf_processor, openvino_preprocess  # noqa: F401
from sysnoise.postprocess import detection as detection_options  # noqa: F401
from sysnoise.postprocess import segmentation as segmentation_options  # noqa: F401
from sysnoise.tasks import classification, detection, language, segmentation  # noqa: F401
from sysnoise.tasks.definition import TASKS
from sysnoise.zoo import detector, efficientnet_lite, resnet, segmenter, smollm  # noqa: F401
from sysnoise.zoo.datasets import DATASETS


def describe() -> dict:
    """Every noise with its options and their one-line descriptions and the tasks whose default
    run measures it; every task, model and dataset name."""
    listed = {
        entry.name: {
            "stage": entry.fn.stage,
            "description": entry.description,
            "options": {option: entry.fn.describe_option(option) for option in entry.fn.options()}
            or ({"VALUE": entry.fn.free_form} if entry.fn.free_form else {}),
            "default_for": [task for task, _ in entry.fn.defaults],
        }
        for entry in noises.NOISES
    }
    return {
        "noises": listed,
        "tasks": {t.name: t.description for t in TASKS},
        "models": {m.name: m.description for m in MODELS},
        "datasets": {d.name: d.description for d in DATASETS},
    }
