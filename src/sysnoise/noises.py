"""The noise catalogue: each noise is one axis along which two systems differ.

A noise names the stage it touches, the Pipeline field it changes and its options (taken from
the registry of implementations, so a new implementation is a new option without editing this
file). It knows when it does not apply to a model, which the report shows as "n/a".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sysnoise.errors import UserInputError
from sysnoise.inference import operators as ops
from sysnoise.inference import runtimes
from sysnoise.inference.build import default_example
from sysnoise.inference.precision import PRECISIONS, family, is_native
from sysnoise.pipeline import stored
from sysnoise.pipeline.colour import COLOURS, is_misconfiguration
from sysnoise.pipeline.decode import DECODERS
from sysnoise.pipeline.geometry import CROPS
from sysnoise.pipeline.resize import RESIZES
from sysnoise.pipeline.spec import Pipeline
from sysnoise.postprocess.options import POSTPROCESS, options_of
from sysnoise.registry import Registry
from sysnoise.tasks import detection_heads


@dataclass(frozen=True)
class Variant:
    noise: str
    option: str
    pipeline: Pipeline

    @property
    def id(self) -> str:
        return f"{self.noise}/{self.option}"


@dataclass(frozen=True)
class SetField:
    """A noise's `apply`: the reference with one Pipeline field set to the option (through
    `convert` when the option names something else, e.g. a folder). Two noises that set one field
    cannot both be in one pipeline."""

    field: str
    convert: Callable[[str], str] | None = None

    def __call__(self, reference: Pipeline, option: str) -> Pipeline:
        return reference.replace(**{self.field: self.convert(option) if self.convert else option})


@dataclass(frozen=True)
class AppendTo:
    """A noise's `apply`: the option added to a tuple field (operator rewrites, post-processing
    options), so options of several noises combine in one pipeline."""

    field: str

    def __call__(self, reference: Pipeline, option: str) -> Pipeline:
        return reference.replace(**{self.field: getattr(reference, self.field) + (option,)})


@dataclass(frozen=True)
class Noise:
    name: str
    stage: str  # pre-processing | inference | post-processing
    description: str
    registry: Registry  # the implementations; describes each option
    apply: SetField | AppendTo  # reference, option -> the variant's pipeline
    only: tuple[str, ...] | Callable[[], list[str]] | None = None  # a subset of the registry's names
    applies: Callable[[object], bool] = lambda model: True
    default_options: Callable[[], list[str]] | None = None  # when the user names none; else all
    free_form: str | None = None  # options are user values (a folder), not registry names: what they are
    # options equal to what this model already does (upsample: its trained mode), from the model
    # and the reference pipeline: like the reference's own decoder, not variants
    model_reference: Callable[[object, Pipeline, list[str]], set[str]] | None = None
    # the tasks whose run measures this noise when none are named: (task, its options or None for
    # the default options); the catalogue is the one place defaults are declared
    defaults: tuple[tuple[str, tuple[str, ...] | Callable[[], list[str]] | None], ...] = ()

    @property
    def field(self) -> str:
        """The Pipeline field this noise writes."""
        return self.apply.field

    @property
    def exclusive(self) -> bool:
        """True when the noise sets its field outright: another noise on the same field replaces it."""
        return isinstance(self.apply, SetField)

    def options(self) -> list[str]:
        # read the registry late: implementations may be registered after this module loads
        if self.free_form:
            return []
        if callable(self.only):
            return list(self.only())
        return list(self.only) if self.only else self.registry.names()

    def describe_option(self, option: str) -> str:
        return self.free_form if self.free_form else self.registry.get(option).description

    def chosen(self, options: list[str] | None = None) -> list[str]:
        """The options a request names (None: the defaults), checked against the catalogue."""
        known = self.options()
        if options is None:
            if self.free_form:
                raise UserInputError(f"noise {self.name!r} needs a value: --noise {self.name}=VALUE ({self.free_form})")
            options = self.default_options() if self.default_options else known
        unknown = [o for o in options if o not in known and not self.free_form]
        if unknown:
            raise UserInputError(f"noise {self.name!r} has no option(s) {unknown}; options: {', '.join(known)}")
        return list(options)

    def unavailable(self, options: list[str] | None = None) -> dict[str, str]:
        """Chosen options whose optional library is missing here: {option: what it needs}."""
        if self.free_form:
            return {}
        out = {}
        for option in self.chosen(options):
            check = self.registry.get(option).meta.get("available")
            if check is not None and not check():
                out[option] = f"needs {self.registry.get(option).meta.get('install', 'an optional library')}"
        return out

    def variants(self, reference: Pipeline, options: list[str] | None = None, model=None) -> list[Variant]:
        """One variant per chosen option; an option whose library is missing is left out (see unavailable),
        and so is one equal to the reference: its own field, or with `model`, what the model already does."""
        chosen = self.chosen(options)
        skip = set(self.unavailable(options))
        if model is not None and self.model_reference is not None:
            skip |= self.model_reference(model, reference, chosen)
        out = []
        for option in chosen:
            pipeline = self.apply(reference, option)
            if pipeline != reference and option not in skip:  # the training system's own option is the reference
                out.append(Variant(self.name, option, pipeline))
        return out


NOISES: Registry = Registry("noise")
VISION = (("classification", None), ("detection", None), ("segmentation", None))  # every image task, default options


def _add(noise: Noise) -> None:
    NOISES.register(noise.name, noise.description, stage=noise.stage)(noise)


_add(
    Noise(
        "decoder",
        "pre-processing",
        "JPEG/PNG decoder library and its settings",
        DECODERS,
        SetField("decoder"),
        defaults=VISION,
    )
)
_add(
    Noise(
        "resize",
        "pre-processing",
        "resize interpolation kernel (library + filter)",
        RESIZES,
        SetField("resize"),
        defaults=VISION,
    )
)
_add(
    Noise(
        "crop",
        "pre-processing",
        "resize-and-crop policy",
        CROPS,
        SetField("crop"),  # keep-ratio policies (detection, segmentation) on request: inputs not square
        default_options=lambda: [n for n in CROPS.names() if CROPS.get(n).meta.get("square", True)],
        defaults=(
            ("classification", None),
            ("detection", ("keep-ratio-max-size", "letterbox", "squash")),
            ("segmentation", ("shorter-side", "letterbox", "squash")),
        ),
    )
)
_add(
    Noise(
        "colour",
        "pre-processing",
        "colour conversion path (YUV round trips, range and matrix mix-ups)",
        COLOURS,
        SetField("colour"),
        default_options=lambda: [n for n in COLOURS.names() if not is_misconfiguration(n)],
        defaults=VISION,
    )
)
_add(
    Noise(
        "channel-order",
        "misconfiguration",
        "RGB fed as BGR: a configuration error, reported apart from noise",
        COLOURS,
        SetField("colour"),
        only=("bgr",),
        defaults=VISION,
    )
)
_add(
    Noise(
        "stored",
        "pre-processing",
        "pixels made elsewhere (sysnoise generate, a device), read from a folder",
        DECODERS,
        SetField("decoder", stored.decoder_name),
        free_form="DIR: a folder of .npy/.png named by sample id, as `sysnoise generate` writes or a device dumps",
    )
)


def _float_precisions() -> list[str]:
    """The precision noise's default options: native half precision is exact but 10-30x slower on
    a CPU, so opt-in there."""
    return [n for n in PRECISIONS.names() if family(n) != "int8" and not is_native(n)]


def _in_torch(model) -> bool:
    """Precision is a torch-level transform: n/a for a model another engine runs (an ONNX file)."""
    return not runtimes.runs_outside_torch(model)


_add(
    Noise(
        "precision",
        "inference",
        "numeric precision of weights and activations (INT8 PTQ: the int8 noise)",
        PRECISIONS,
        SetField("precision"),
        only=lambda: [n for n in PRECISIONS.names() if family(n) != "int8"],
        applies=_in_torch,
        default_options=_float_precisions,
        # a causal LM: no calibrated INT8 either (it calibrates on images)
        defaults=VISION
        + (("language", lambda: [n for n in _float_precisions() if not PRECISIONS.get(n).meta.get("calibrated")]),),
    )
)
_add(
    Noise(
        "int8",
        "inference",
        "INT8 post-training quantization, simulated (calibrated on held-out data)",
        PRECISIONS,
        SetField("precision"),
        only=lambda: [n for n in PRECISIONS.names() if family(n) == "int8"],
        applies=_in_torch,
        # the calibrators and per-tensor weights by default; weight/activation symmetry variants on request
        default_options=lambda: [
            n for n in PRECISIONS.names() if family(n) == "int8" and n not in ("int8-asym", "int8-symact")
        ],
        defaults=VISION,
    )
)


def _operator_noise(name: str, description: str, **more) -> Noise:
    """A noise over the operator rewrites registered for it (operators.py, meta `noise`); each
    option's own `applies` (registry meta) says where it fits."""
    return Noise(
        name,
        "inference",
        description,
        ops.OPERATORS,
        AppendTo("operators"),
        only=lambda: ops.options_of(name),
        applies=lambda model: any(ops.applies(o, model) for o in ops.options_of(name)),
        **more,
    )


def _trained_upsampling(model, reference: Pipeline, options: list[str]) -> set[str]:
    return ops.trained_upsampling(model, default_example(reference), options)


_add(
    _operator_noise(
        "ceil-mode",
        "strided max-pool ceil_mode (trained with floor)",
        # anchors moved with the grid are torchvision eager's artefact, not the pool's: on request
        default_options=lambda: ["maxpool-ceil"],
        defaults=VISION,
    )
)
_add(_operator_noise("avgpool-ceil", "strided average-pool ceil_mode (trained with floor)"))
_add(_operator_noise("avgpool-pad", "average-pool count_include_pad flipped"))
_add(
    _operator_noise(
        "upsample",
        "upsampling mode / align_corners wherever the model interpolates, against the mode it was trained with",
        model_reference=_trained_upsampling,
        defaults=VISION,
    )
)
_add(_operator_noise("gelu-tanh", "GELU erf <-> tanh approximation"))
_add(_operator_noise("norm-eps", "normalisation epsilon of another framework's default"))
_add(_operator_noise("bn-fold", "batch-norm folded into the preceding convolution"))
_add(
    Noise(
        "runtime",
        "inference",
        "the engine that runs the model (same weights, another runtime)",
        runtimes.RUNTIMES,
        SetField("runtime"),
        # runtimes whose build takes minutes on a CPU (torch.ao INT8, ExecuTorch) are opt-in
        default_options=lambda: [e.name for e in runtimes.RUNTIMES if not e.meta.get("opt_in")],
        defaults=(("classification", None), ("segmentation", None)),
    )
)


def _is_detector(model) -> bool:
    return detection_heads.family(model) is not None


def _post_noise(name: str, description: str, applies: Callable[[object], bool], task: str = "detection") -> Noise:
    """A noise over post-processing options (postprocess/): the raw outputs are shared, so its
    variants cost no forward pass."""
    return Noise(
        name,
        "post-processing",
        description,
        POSTPROCESS,
        AppendTo("postprocess"),
        only=lambda: options_of(name),
        applies=applies,
        defaults=((task, None),),
    )


_add(
    _post_noise(
        "box-decoding",
        "box decoding convention: +1 pixel x2/y2 (ALIGNED_FLAG), legacy +1 widths, exp in float16",
        _is_detector,
    )
)
_add(
    _post_noise(
        "box-rounding", "integer box coordinates in the output (round, floor, truncate after clipping)", _is_detector
    )
)
_add(
    _post_noise(
        "nms", "NMS: greedy loop vs torchvision's kernel, +1 pixel IoU, class-agnostic, IoU threshold", _is_detector
    )
)
_add(_post_noise("score-threshold", "score threshold before NMS", _is_detector))
_add(_post_noise("top-k", "candidates per level before NMS, detections per image after", _is_detector))
_add(_post_noise("box-clip", "boxes clipped to the input before NMS (torchvision), after it, or never", _is_detector))
_add(
    _post_noise(
        "mask-resize",
        "segmentation: how predictions return to the label map's size (bilinear logits, align_corners, nearest labels)",
        lambda model: not _is_detector(model),
        "segmentation",
    )
)


def get_noise(name: str) -> Noise:
    return NOISES(name)


def split_spec(spec: str) -> tuple[str, list[str] | None]:
    """The one NAME=OPTION[,OPTION...] syntax: 'resize' -> ('resize', None); 'resize=a, b' ->
    ('resize', ['a', 'b'])."""
    name, _, options = spec.partition("=")
    return name.strip(), ([o.strip() for o in options.split(",") if o.strip()] if options else None)


def parse_noise_spec(spec: str) -> tuple[Noise, list[str] | None]:
    """'resize' -> all options; 'resize=pillow-nearest,opencv-area' -> those options."""
    name, options = split_spec(spec)
    return get_noise(name), options


def field_noises(stage: str | None = None) -> dict[str, Noise]:
    """Pipeline field -> the noise of the same name that sets it outright (decoder, resize, crop,
    colour, precision): the fields a train-by-test matrix, a mix and a device match vary. stage:
    only that stage's."""
    return {
        n.fn.field: n.fn
        for n in NOISES
        if n.fn.exclusive and n.name == n.fn.field and not n.fn.free_form and (stage is None or n.fn.stage == stage)
    }


def default_noises(task: str) -> tuple[str, ...]:
    """The noise specs a run of `task` measures when none are named, in catalogue order."""
    specs = []
    for entry in NOISES:
        for name, options in entry.fn.defaults:
            if name == task:
                chosen = options() if callable(options) else options
                specs.append(entry.name if chosen is None else f"{entry.name}={','.join(chosen)}")
    return tuple(specs)
