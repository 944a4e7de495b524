"""Turn a base model and a Pipeline's model stage into the model that stage describes."""

from __future__ import annotations

from sysnoise.inference.operators import OPERATORS
from sysnoise.inference.precision import PRECISIONS
from sysnoise.pipeline.spec import Pipeline


def build_model(base, pipeline: Pipeline):
    """Operator rewrites first (they act on module structure), then precision, then runtime."""
    if pipeline.runtime != "torch":
        raise ValueError(f"runtime {pipeline.runtime!r} is not available; known: torch")
    model = base
    for name in pipeline.operators:
        model = OPERATORS(name)(model)
    model = PRECISIONS(pipeline.precision)(model)
    return model.eval()
