"""The post-processing options registry (POSTPROCESS) and how a column's options configure the
model's reference post-processing; detection.py and segmentation.py register the options."""

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
