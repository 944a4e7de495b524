"""A task, as one definition that owns its parts: how it reads data, prepares the model, which
noise stages it has, how its outputs are analysed (its metric), and the extra files a run writes.
`measure.measure` runs every task through these; a new task is a module that registers one
definition (and a line in catalogue.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sysnoise.errors import UserInputError
from sysnoise.loaded_model import LoadedModel
from sysnoise.models import load
from sysnoise.pipeline.spec import Pipeline
from sysnoise.registry import Registry
from sysnoise.tasks.base import Task

TASKS: Registry = Registry("task")

IMAGE_STAGES = ("pre-processing", "misconfiguration", "inference")
ALL_STAGES = IMAGE_STAGES + ("post-processing",)


@dataclass(frozen=True)
class Prepared:
    """A model made ready for one task and dataset."""

    task: Task  # what the engine calls per sample and per batch
    analysis: object  # metric, resamples, reference_metrics(outputs), variant_stats(outputs, id, noise, option)


class TaskDefinition:
    name = "task"
    stages: tuple[str, ...] = IMAGE_STAGES  # the noise stages it has; the others are n/a
    settings: tuple[str, ...] = ()  # reading settings it accepts beside the data (list_file, class_map, ...)
    images = True  # image samples: corrupt-data pre-flight, difference pictures
    requires: tuple[str, str] | None = None  # (extra, what for) that must be installed

    def read(self, data, *, allow_outside_root: bool = False, **settings):
        """The dataset: samples (with .id, .path), describe(), problems, label_matrix()."""
        raise NotImplementedError

    def load(self, model, weights=None, reference: Pipeline | str | Path | None = None) -> LoadedModel:
        """The model under test with its reference pipeline (models.load: a name, a LoadedModel or a module)."""
        return load(model, weights, reference)

    def prepare(self, loaded: LoadedModel, dataset) -> Prepared:
        raise NotImplementedError

    def fingerprint(self, dataset) -> list:
        """What identifies the evaluated samples for the run identity (engine/identity.py): their ids
        and whatever else their scores depend on (labels)."""
        return [(s.id, s.labels) for s in dataset.samples]

    def unsupported(self, pipeline: Pipeline) -> str | None:
        """Why a variant's pipeline cannot run for this task (None: it can)."""
        return None

    def view(self, pipeline: Pipeline) -> dict:
        """The pipeline fields results.json shows for this task."""
        return pipeline.to_dict()

    def describe(self, prepared: Prepared) -> dict:
        """The task's own top-level fields of results.json (a language run's scoring window)."""
        return {}

    def libraries(self) -> tuple[str, ...]:
        """Distributions whose versions results.json records beside the environment's."""
        return ()

    def write_files(self, out: Path, results: dict) -> list[Path]:
        """Extra files a finished run writes for the user's own tools (detections as COCO JSON)."""
        return []

    def check_settings(self, settings: dict) -> None:
        """Refuse reading settings this task does not have, naming the ones it has."""
        for setting in [k for k, v in settings.items() if v is not None and k not in self.settings]:
            owners = [t.name for t in TASKS if setting in t.fn.settings]
            where = f"is for --task {' / '.join(owners)}" if owners else "is no task's setting"
            raise UserInputError(
                f"{flag(setting)} {where}, not a setting of --task {self.name}"
                + (f" (its settings: {', '.join(flag(k) for k in self.settings)})" if self.settings else "")
            )


def flag(setting: str) -> str:
    """A reading setting as the command line spells it (the API's fmt is --format)."""
    return "--" + {"fmt": "format"}.get(setting, setting).replace("_", "-")
