"""Mix training (the paper's Algorithm 1) as a drop-in training transform.

`MixTransform` draws, for every training sample, one pre-processing system from declared options
(decoders, colour paths, resize kernels, crop policies, uniform or weighted) and runs the raw
file through it with the project's own stage functions (`sysnoise.pipeline.preprocess`), so the
training pixels are bit-identical to what `sysnoise run` evaluates under the same Pipeline. It
returns the pixels together with the Pipeline it used.

Draws are pure functions of (seed, epoch, sample index) (or batch index), never of a running
random state, so they do not depend on the number of DataLoader workers, on which worker gets
which sample, or on the order samples are asked for; a rerun with the same seed trains on the
same pixels. `MixBatchSampler` carries the epoch (and, per batch, the choice) inside the keys it
hands the dataset, so this holds with persistent workers too.

    mix = MixTransform({"decoder": ["pillow", "ffmpeg"], "resize": {"pillow-bilinear": 2, "opencv-nearest": 1}},
                       base=Pipeline(input_size=224), seed=0)
    x, pipeline = mix(Path("n01440764/a.JPEG").read_bytes(), index=17, epoch=3)

Sampling one pipeline from the product of the fields' options with the product of their
probabilities is the same distribution as drawing each field independently, and gives each
sample one integer (`choice`, an index into `mix.pipelines`) that a batch can carry.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from sysnoise.errors import SampleError
from sysnoise.noises import field_noises, split_spec
from sysnoise.pipeline import preprocess
from sysnoise.pipeline.colour import COLOURS
from sysnoise.pipeline.decode import DECODERS, decode
from sysnoise.pipeline.geometry import Geometry, apply_geometry
from sysnoise.pipeline.normalise import normalise
from sysnoise.pipeline.resize import RESIZES
from sysnoise.pipeline.spec import STAGES, Pipeline

# Fields a training transform can vary: everything before the model's input tensor except the
# normalisation (a model is trained for one mean/std; changing it is not a system noise).
MIXABLE_FIELDS = tuple(f for stage, names in STAGES if stage in ("decode", "colour", "geometry") for f in names)
OUTPUTS = ("normalised", "uint8", "pixels")

# Independent random streams: a sample's draw, a batch's draw, and draws without an index.
_SAMPLE, _BATCH, _UNINDEXED = 0, 1, 2


def _registry(field: str):
    noise = field_noises("pre-processing").get(field)
    return noise.registry if noise else None


def option_weights(options: Mapping[str, Sequence | Mapping[str, float]] | None) -> dict[str, dict]:
    """{field: [options]} (uniform) or {field: {option: weight}} -> {field: {option: probability}},
    checked: mixable fields, registered option names, positive finite weights, no repeats."""
    out: dict[str, dict] = {}
    for field, choices in (options or {}).items():
        if field not in MIXABLE_FIELDS:
            raise ValueError(f"cannot mix {field!r}: mixable pipeline fields are {', '.join(MIXABLE_FIELDS)}")
        if isinstance(choices, Mapping):
            pairs = list(choices.items())
        elif isinstance(choices, (str, bytes)):
            raise ValueError(f"{field}: give a list of options or {{option: weight}}, not the string {choices!r}")
        else:
            pairs = [(choice, 1.0) for choice in choices]
        names = [name for name, _ in pairs]
        if not pairs:
            raise ValueError(f"{field}: no options given")
        if len(set(names)) != len(names):
            raise ValueError(f"{field}: option listed twice in {names}")
        registry = _registry(field)
        for name, weight in pairs:
            if registry is not None:
                registry.get(name)  # UnknownNameError lists the known names
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
                raise ValueError(f"{field}={name}: weight must be a positive number, got {weight!r}")
        total = float(sum(weight for _, weight in pairs))
        out[field] = {name: float(weight) / total for name, weight in pairs}
    # stage order, so equal declarations written in another key order give the same pipelines
    return {field: out[field] for field in MIXABLE_FIELDS if field in out}


def parse_mix(specs: Iterable[str]) -> dict[str, dict[str, float]]:
    """Command-line spellings 'resize=pillow-bilinear,opencv-nearest:2' -> {field: {option: weight}}."""
    out: dict[str, dict[str, float]] = {}
    for spec in specs:
        field, parts = split_spec(spec)
        if not parts:
            raise ValueError(f"--mix {spec!r}: expected FIELD=OPTION[:WEIGHT],OPTION[:WEIGHT]...")
        if field in out:
            raise ValueError(f"--mix {field} given twice; list all its options in one --mix")
        weights = {}
        for part in parts:
            name, _, weight = part.partition(":")
            try:
                weights[name.strip()] = float(weight) if weight else 1.0
            except ValueError:
                raise ValueError(f"--mix {spec!r}: weight {weight!r} of {name!r} is not a number") from None
        out[field] = weights
    return out


@dataclass(frozen=True)
class RandomResizedCrop:
    """The standard ImageNet training crop (torchvision's RandomResizedCrop parameters: a box of
    `scale` x the area and aspect in `ratio`, ten tries, else the centre crop of the closest
    aspect), resized to input_size x input_size by the drawn pipeline's resize kernel. It replaces
    the pipeline's eval crop policy; the box comes from the sample's own random stream."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def box(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
                return left, top, left + w, top + h
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif aspect > self.ratio[1]:
            w, h = int(round(height * self.ratio[1])), height
        else:
            w, h = width, height
        left, top = (width - w) // 2, (height - h) // 2
        return left, top, left + w, top + h


def _read(source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except OSError as err:
        raise SampleError(f"{path}: cannot read: {err}") from None


class MixTransform:
    """Raw bytes (or a path) -> (model input, the Pipeline used), one pipeline drawn per sample.

    options: {field: [options]} or {field: {option: weight}} over MIXABLE_FIELDS; None or {} is
    training with `base` alone. base: the Pipeline the unmixed fields come from. output:
    "normalised" (CHW float32 torch tensor, the pipeline's mean/std), "uint8" (CHW uint8 torch
    tensor, for torchvision v2 transforms to follow) or "pixels" (HWC uint8 numpy).
    random_crop: a RandomResizedCrop replacing the eval crop policy (ImageNet-style training).
    """

    def __init__(
        self,
        options: Mapping | None = None,
        base: Pipeline | None = None,
        *,
        seed: int = 0,
        output: str = "normalised",
        random_crop: RandomResizedCrop | None = None,
    ):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.base = base or Pipeline()
        self.weights = option_weights(options)
        self.seed, self.output, self.random_crop, self.epoch = int(seed), output, random_crop, 0
        fields = list(self.weights)
        combos = list(itertools.product(*(self.weights[f].items() for f in fields)))
        self.pipelines = tuple(
            self.base.replace(**{f: name for f, (name, _) in zip(fields, combo)}) for combo in combos
        )
        self.probabilities = np.array([math.prod(p for _, p in combo) for combo in combos])
        self._cumulative = np.cumsum(self.probabilities)
        if random_crop is not None:
            sized = sorted({p.decoder for p in self.pipelines if DECODERS.get(p.decoder).meta.get("sized")})
            if sized:  # they scale while decoding to fit the eval crop, which a random box replaces
                raise ValueError(
                    f"decoder(s) {sized} scale to the eval crop while decoding; they cannot be "
                    "combined with random_crop"
                )
        self._unindexed_calls = 0

    # ----------------------------------------------------------------------------- drawing
    @property
    def reference(self) -> Pipeline:
        """The most probable pipeline (first on ties): the model's reference for `sysnoise run`."""
        return self.pipelines[int(np.argmax(self.probabilities))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _choice(self, rng: np.random.Generator) -> int:
        u = rng.random()
        return min(int(np.searchsorted(self._cumulative, u, side="right")), len(self.pipelines) - 1)

    def _sample_rng(self, index: int | None, epoch: int) -> np.random.Generator:
        if index is not None:
            return np.random.default_rng([self.seed, epoch, _SAMPLE, int(index)])
        # No index (e.g. a torchvision-style transform(image) call): a per-worker stream. torch
        # seeds each worker from the main process's generator, so this is reproducible under
        # torch.manual_seed for a fixed worker count, but not independent of it.
        self._unindexed_calls += 1
        return np.random.default_rng([self.seed, epoch, _UNINDEXED, _worker_seed(), self._unindexed_calls])

    def choose(self, index: int, epoch: int | None = None) -> int:
        """The pipeline (an index into `pipelines`) sample `index` gets in `epoch`."""
        return self._choice(self._sample_rng(index, self.epoch if epoch is None else epoch))

    def choose_batch(self, batch: int, epoch: int | None = None) -> int:
        """One pipeline for a whole batch (per-batch mixing): batch number `batch` of `epoch`."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, _BATCH, int(batch)])
        return self._choice(rng)

    # ----------------------------------------------------------------------------- pixels
    def __call__(self, source, index: int | None = None, *, epoch: int | None = None, choice: int | None = None):
        """(model input, Pipeline). choice: force a pipeline (per-batch mixing) instead of drawing."""
        data, name = _read(source)
        rng = self._sample_rng(index, self.epoch if epoch is None else epoch)
        drawn = self._choice(rng)  # always drawn, so a forced choice leaves the crop box unchanged
        pipeline = self.pipelines[drawn if choice is None else int(choice)]
        try:
            image = self._pixels(data, pipeline, rng)
        except SampleError as err:
            raise SampleError(f"{name}: {pipeline.to_json()}: {err}") from None
        return self._format(image, pipeline), pipeline

    def _pixels(self, data: bytes, pipeline: Pipeline, rng: np.random.Generator) -> np.ndarray:
        if self.random_crop is None:
            out = preprocess.pixels(data, [pipeline])[pipeline.prefix("geometry")]
            if isinstance(out, Exception):
                raise out
            return out
        image = COLOURS(pipeline.colour)(decode(pipeline.decoder, data))
        size = pipeline.input_size
        box = self.random_crop.box(image.shape[1], image.shape[0], rng)
        return apply_geometry(
            image, Geometry((size, size), (0, 0, size, size), source_box=box), RESIZES(pipeline.resize)
        )

    def _format(self, image: np.ndarray, pipeline: Pipeline):
        if self.output == "pixels":
            return image
        import torch

        if self.output == "uint8":
            return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

        return torch.from_numpy(normalise(image, pipeline.mean, pipeline.std))

    def all_pixels(self, source) -> list[np.ndarray]:
        """Every pipeline's eval-geometry pixels of one file, each distinct stage computed once
        (pipelines that share a decode share it): for training loops that precompute a bank per
        option and then index it with `choose`."""
        data, name = _read(source)
        values = preprocess.pixels(data, self.pipelines)
        out = [values[p.prefix("geometry")] for p in self.pipelines]
        for pipeline, value in zip(self.pipelines, out):
            if isinstance(value, Exception):
                raise SampleError(f"{name}: {pipeline.to_json()}: {value}")
        return out

    def describe(self) -> dict:
        return {
            "options": self.weights,
            "base": self.base.to_dict(),
            "seed": self.seed,
            "random_crop": None
            if self.random_crop is None
            else {"scale": list(self.random_crop.scale), "ratio": list(self.random_crop.ratio)},
            "pipelines": [p.to_dict() for p in self.pipelines],
            "probabilities": [float(p) for p in self.probabilities],
        }


def _worker_seed() -> int:
    try:
        from torch.utils.data import get_worker_info
    except ImportError:
        return 0
    info = get_worker_info()
    return 0 if info is None else int(info.seed)


# --------------------------------------------------------------------------- torch data plumbing
class MixDataset:
    """A map-style dataset over (file, label) pairs (e.g. torchvision ImageFolder(...).samples)
    that hands each file to a MixTransform with its index. Keys are an index (the transform's
    current epoch, a per-sample draw) or (index, epoch, choice-or-None) from MixBatchSampler.
    Items are (input, label), or (input, label, choice) with with_choice=True (the choice indexes
    transform.pipelines; an int collates where a Pipeline would not). then: a transform applied to
    each input afterwards (e.g. torchvision's RandomHorizontalFlip)."""

    def __init__(
        self,
        samples: Sequence[tuple],
        transform: MixTransform,
        *,
        with_choice: bool = False,
        then: Callable | None = None,
    ):
        self.samples, self.transform, self.with_choice, self.then = list(samples), transform, with_choice, then

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.transform.set_epoch(epoch)

    def __getitem__(self, key):
        index, epoch, choice = (key, None, None) if isinstance(key, (int, np.integer)) else key
        source, label = self.samples[index]
        x, pipeline = self.transform(source, index, epoch=epoch, choice=choice)
        if self.then is not None:
            x = self.then(x)
        if not self.with_choice:
            return x, label
        return x, label, self.transform.pipelines.index(pipeline)


class MixBatchSampler:
    """Batches of dataset keys (index, epoch, choice) for MixDataset. per="batch": one pipeline per
    batch, drawn from (seed, epoch, batch number); per="sample": choice None, each sample draws its
    own. The order of indices comes from `sampler` (a torch RandomSampler, DistributedSampler, or
    any iterable of indices), whose own epoch the caller sets as usual. Use as
    DataLoader(dataset, batch_sampler=MixBatchSampler(...)); call set_epoch(e) every epoch."""

    def __init__(
        self, sampler, batch_size: int, transform: MixTransform, *, per: str = "batch", drop_last: bool = False
    ):
        if per not in ("batch", "sample"):
            raise ValueError(f"per must be 'batch' or 'sample', got {per!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sampler, self.batch_size, self.transform = sampler, int(batch_size), transform
        self.per, self.drop_last, self.epoch = per, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.transform.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        batch, number = [], 0
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield self._keys(batch, number)
                batch, number = [], number + 1
        if batch and not self.drop_last:
            yield self._keys(batch, number)

    def _keys(self, indices: list[int], number: int) -> list[tuple]:
        choice = self.transform.choose_batch(number, self.epoch) if self.per == "batch" else None
        return [(index, self.epoch, choice) for index in indices]
