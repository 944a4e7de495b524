"""Post-processing: what turns a model's raw outputs into the task's answer (detections, a label
map), and the options by which deployments do it differently.

A Pipeline's `postprocess` field names options in order; each option is a small function that
changes the model's reference post-processing configuration (`configure`). The engine runs the
model once per distinct input and applies every column's post-processing to the same raw
outputs (Task.finish), so a post-processing variant costs no forward pass.
"""

from __future__ import annotations

from sysnoise.registry import Registry

# name -> fn(config) -> config; meta: noise (catalogue noise it belongs to), task (detection | segmentation)
POSTPROCESS: Registry = Registry("post-processing option")


def configure(reference, names: tuple[str, ...], task: str):
    """The reference configuration with the named options applied in order."""
    config = reference
    for name in names:
        entry = POSTPROCESS.get(name)
        if entry.meta.get("task") != task:
            raise ValueError(f"post-processing option {name!r} is for {entry.meta.get('task')}, not {task}")
        config = entry.fn(config)
    return config


def options_of(noise: str) -> list[str]:
    return [entry.name for entry in POSTPROCESS if entry.meta.get("noise") == noise]


# the options register on import (numpy only; torch is imported when they run)
from sysnoise.postprocess import detection, segmentation  # noqa: E402,F401
