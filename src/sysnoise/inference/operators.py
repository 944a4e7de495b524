"""Operator variants: rewrites of a torch model that keep its weights but change an operator's
semantics, as a different runtime or export path would. Each knows whether it applies to a model.
"""

from __future__ import annotations

import copy

from sysnoise.registry import Registry

OPERATORS: Registry = Registry("operator variant")


def _strided_maxpools(model):
    import torch

    return [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.MaxPool2d) and max(_pair(m.stride)) > 1 and not m.ceil_mode
    ]


def _pair(value):
    return value if isinstance(value, tuple) else (value, value)


@OPERATORS.register(
    "maxpool-ceil",
    "strided max-pool with ceil_mode=True (trained with floor): the feature map grows by one row/column",
    applies=lambda model: bool(_strided_maxpools(model)),
)
def maxpool_ceil(model):
    rewritten = copy.deepcopy(model)
    for pool in _strided_maxpools(rewritten):
        pool.ceil_mode = True
    return rewritten


def applies(name: str, model) -> bool:
    check = OPERATORS.get(name).meta.get("applies")
    return True if check is None else bool(check(model))
