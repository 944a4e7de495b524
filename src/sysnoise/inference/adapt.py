"""Test-time adaptation (`--adapt tent`): each column's model adapts online on its own test stream.

TENT (Wang et al., ICLR 2021, github.com/DequanWang/tent): BatchNorm layers normalise with the
current batch's statistics (running statistics dropped), only their affine parameters (weight,
bias) are trainable, and each forward pass takes one optimiser step on the mean entropy of its
softmax predictions; the outputs returned are those computed before the step, as TENT's
`forward_and_adapt`. Unlike TENT's `model.train()`, only BatchNorm layers are put in training
mode: dropout / drop-path stay off, so the stream is deterministic.

The paper (SysNoise Table 6) ran TENT under each noise: the reference and every variant adapt
from the same trained weights, each on its own stream. So adaptation makes a model stage
stateful, and the engine, which shares one built model between columns with equal model stages,
gives every column its own model (`own_models`) and its own adapting copy (`adapting`); the
loaded model is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

from sysnoise.errors import UserInputError
from sysnoise.inference.build import BuildFailure
from sysnoise.inference.operators import batchnorms
from sysnoise.registry import Registry

ADAPTATIONS: Registry = Registry("adaptation")


@dataclass(frozen=True)
class Recipe:
    optimiser: str  # "sgd" | "adam" | "none" (batch statistics only, no step)
    lr: float  # for a batch of `lr_batch` samples; scaled linearly with the batch size
    lr_batch: int
    momentum: float = 0.0


# TENT's ImageNet setting (SGD, momentum 0.9, lr 0.00025 at batch 64) and its CIFAR one (Adam 1e-3 at 128)
ADAPTATIONS.register(
    "tent",
    "TENT: BatchNorm affine parameters by entropy minimisation, SGD lr 0.00025 x batch/64, "
    "momentum 0.9 (TENT's ImageNet setting)",
)(Recipe("sgd", 0.00025, 64, 0.9))
ADAPTATIONS.register("tent-adam", "TENT with Adam lr 0.001 x batch/128 (TENT's CIFAR setting)")(
    Recipe("adam", 1e-3, 128)
)
# TENT's own baseline ("BN", Schneider et al. 2020): normalise with each test batch's statistics, no step
ADAPTATIONS.register(
    "bn-stats",
    "BatchNorm with each test batch's statistics, no parameter update (TENT's BN "
    "baseline): separates the statistics from the entropy steps",
)(Recipe("none", 0.0, 1))


def _batch_norms(model):
    return [m for m in batchnorms(model) if m.affine]


def affine_parameters(model) -> list:
    """The parameters TENT optimises: every BatchNorm layer's weight and bias."""
    return [p for m in _batch_norms(model) for p in (m.weight, m.bias)]


def softmax_entropy(logits):
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


class Tent:
    """A model that adapts on every batch it is given (see the module docstring)."""

    def __init__(self, model, recipe: Recipe, batch_size: int):
        import torch

        self.model = copy.deepcopy(model)
        self.model.eval().requires_grad_(False)
        for bn in _batch_norms(self.model):
            bn.train()  # normalise with the batch's statistics
            bn.track_running_stats, bn.running_mean, bn.running_var = False, None, None
            bn.requires_grad_(True)
        params = affine_parameters(self.model)
        lr = recipe.lr * batch_size / recipe.lr_batch
        optimisers = {
            "sgd": lambda: torch.optim.SGD(params, lr=lr, momentum=recipe.momentum),
            "adam": lambda: torch.optim.Adam(params, lr=lr),
            "none": lambda: None,
        }
        self.optimiser = optimisers[recipe.optimiser]()
        self.entropies: list[float] = []  # mean entropy of each batch, before its step

    def __call__(self, x):
        import torch

        if self.optimiser is None:
            with torch.no_grad():
                logits = self.model(x)
                loss = softmax_entropy(logits).mean()
            self.entropies.append(float(loss))
            return logits
        with torch.inference_mode(False), torch.enable_grad():
            logits = self.model(x.clone())  # a clone outside inference mode can join autograd
            loss = softmax_entropy(logits).mean()
            loss.backward()
            self.optimiser.step()
            self.optimiser.zero_grad()
        self.entropies.append(float(loss.detach()))
        return logits.detach()

    def to(self, device):
        self.model.to(device)
        return self

    def eval(self):
        return self


def own_models(columns: list) -> list:
    """Columns whose model keys are their own: no two columns share an adapting model."""
    return [replace(column, model_owner=column.id) for column in columns]


def _cannot_adapt(model, recipe: Recipe, input_size: int) -> str | None:
    """Why one adaptation step fails on this model stage (a throwaway copy), or None. Emulated
    precisions that round in place, simulated INT8 and runtimes outside torch cannot back-propagate."""
    import torch

    try:
        Tent(model, recipe, batch_size=2)(
            torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
        )
    except Exception as err:  # noqa: BLE001 - whatever the stage raises, its column records it; the run goes on
        return f"{type(err).__name__}: {err}"[:300]
    return None


def adapting(models: dict, stages: dict, name: str, batch_size: int) -> dict:
    """{key: Tent copy} for every built model (stages: key -> its Pipeline); a stage TENT cannot
    adapt (no BatchNorm affine parameters, no gradient through it) becomes a BuildFailure that its
    column records; a model with nothing to adapt anywhere is refused."""
    import torch

    recipe = ADAPTATIONS(name)
    out = {}
    for key, model in models.items():
        if isinstance(model, BuildFailure):
            out[key] = model
        elif not isinstance(model, torch.nn.Module) or not affine_parameters(model):
            out[key] = BuildFailure(f"--adapt {name}: this model stage has no BatchNorm affine parameters to adapt")
        elif (why := _cannot_adapt(model, recipe, stages[key].input_size)) is not None:
            out[key] = BuildFailure(f"--adapt {name}: cannot adapt this model stage: {why}")
        else:
            out[key] = Tent(model, recipe, batch_size)
    if not any(isinstance(model, Tent) for model in out.values()):
        raise UserInputError(
            f"--adapt {name}: the model has no BatchNorm layer with affine parameters; TENT adapts "
            "only those (run without --adapt)"
        )
    return out
