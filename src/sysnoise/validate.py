"""What a user gives a run, checked before any model loads or any sample is decoded.

A wrong option name, a pipeline file in another tool's spelling, a device this machine lacks or a
results folder that cannot be written ends the run at once with `FILE[:line]: what is wrong, how
to fix` (UserInputError: the CLI prints `sysnoise: error:` and exits 2), instead of after every
forward pass has failed. Pipelines are checked here against the registries, which the Pipeline
value (pipeline/spec.py) does not know.

`--reference` / `--deploy` files accept the spellings users copy from timm and Hugging Face
(user_spellings): `interpolation`, `resample`, `crop_mode`, `input_size: [3, H, W]`,
`image_mean` / `image_std`. Mean and std are in 0-255 pixel units; values that can only be 0-1
units (a mean of fractions, a std below 1) are refused with the 0-255 values to write, never read
silently as pixels. `image_mean` / `image_std` are Hugging Face's 0-1 values and are scaled x255,
with a warning that says so.
"""

from __future__ import annotations

import difflib
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

from sysnoise.errors import UserInputError
from sysnoise.inference.operators import OPERATORS
from sysnoise.inference.precision import PRECISIONS
from sysnoise.inference.runtimes import ONNX_FILE_PREFIX, RUNTIMES
from sysnoise.noises import parse_noise_spec
from sysnoise.pipeline import stored
from sysnoise.pipeline.colour import COLOURS
from sysnoise.pipeline.decode import DECODERS
from sysnoise.pipeline.geometry import CROPS
from sysnoise.pipeline.resize import RESIZES
from sysnoise.pipeline.spec import FieldError, Pipeline
from sysnoise.postprocess.options import POSTPROCESS
from sysnoise.reference_sources import INTERPOLATIONS, PIL_RESAMPLE, TIMM_CROP_MODES
from sysnoise.registry import Registry

# Pipeline fields that hold registry names (one name, or a tuple of names).
OPTION_FIELDS: dict[str, Registry] = {
    "decoder": DECODERS,
    "colour": COLOURS,
    "resize": RESIZES,
    "crop": CROPS,
    "precision": PRECISIONS,
    "runtime": RUNTIMES,
    "operators": OPERATORS,
    "postprocess": POSTPROCESS,
}
# Other tools' keys that have no one-to-one translation, with the sysnoise spelling to use instead.
FOREIGN_HINTS = {
    "size": "Hugging Face's resize size: write input_size (the crop's side) and crop_pct (crop / resized side)",
    "crop_size": "Hugging Face's crop size: write input_size (the crop's side) and crop_pct (crop / resized side)",
    "shortest_edge": "write input_size (the crop's side) and crop_pct (input_size / shortest_edge)",
    "rescale_factor": "sysnoise's mean/std are in 0-255 pixel units: write mean/std x255 (or image_mean/image_std)",
    "do_resize": "sysnoise always resizes and crops: choose the policy with crop (see `sysnoise list`)",
    "do_center_crop": "choose the policy with crop: shorter-centre-crop, squash, ... (see `sysnoise list`)",
    "do_normalize": "for no normalisation write mean: [0, 0, 0] and std: [1, 1, 1]",
    "do_rescale": "sysnoise's mean/std are in 0-255 pixel units: write mean/std x255 (or image_mean/image_std)",
    "interpolation_mode": "write resize: one of the resize options (see `sysnoise list`)",
    "test_input_size": "write input_size: the side of the model's input",
}


def nearest(value: str, names: list[str]) -> str:
    """'did you mean A, B?' with the closest names (spelling, else names containing `value`), or
    every name when none is close."""
    close = difflib.get_close_matches(value, names, n=3) or [name for name in names if value and value in name][:3]
    return f"did you mean {', '.join(close)}?" if close else f"options: {', '.join(names)}"


def _option_error(field: str, value: Any, registry: Registry) -> FieldError:
    kind = {"operators": "operator", "postprocess": "post-processing"}.get(field, field)
    article = "an" if kind[0] in "aeiou" else "a"
    return FieldError(
        field,
        f"{value!r} is not {article} {kind} option; {nearest(str(value), registry.names())} "
        "(`sysnoise list` describes each)",
    )


def _check_name(field: str, value: str) -> None:
    """One registry name of `field`; decoder stored:DIR and runtime onnx:FILE name a folder or file."""
    if field == "decoder" and stored.is_stored(value):
        stored.manifest(value[len(stored.PREFIX) :])  # refuses a folder that is not there
    elif field == "runtime" and value.startswith(ONNX_FILE_PREFIX):
        if not Path(value[len(ONNX_FILE_PREFIX) :]).is_file():
            raise FieldError(field, f"{value!r}: the ONNX file is not there")
    elif value not in OPTION_FIELDS[field]:
        raise _option_error(field, value, OPTION_FIELDS[field])


def check_fields(data: dict) -> None:
    """Every registry name among `data`'s fields is a known option (FieldError names the first not)."""
    for field, value in data.items():
        if field not in OPTION_FIELDS:
            continue
        for name in value if isinstance(value, (list, tuple)) else [value]:
            _check_name(field, name if isinstance(name, str) else repr(name))


def validate_pipeline(pipeline: Pipeline, source: str) -> Pipeline:
    """`pipeline` if every option it names exists; else UserInputError `SOURCE: field: ...`."""
    try:
        check_fields(pipeline.to_dict())
    except FieldError as err:
        raise UserInputError(f"{source}: {err}") from None
    return pipeline


def _resize_from(key: str, name: Any) -> str:
    option = INTERPOLATIONS.get(str(name).lower())
    if option is None:
        raise FieldError(
            key,
            f"{name!r} is not an interpolation sysnoise knows ({', '.join(INTERPOLATIONS)}); "
            "write resize: one of the resize options (see `sysnoise list`)",
        )
    return option


def _numbers(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and all(isinstance(v, (int, float)) for v in values)


def _scaled(values) -> list[float]:
    return [round(float(v) * 255, 6) for v in values]


def user_spellings(data: dict) -> dict:
    """A pipeline file's fields with timm's and Hugging Face's spellings translated onto sysnoise's,
    and every option name checked (Pipeline.load's `prepare`; FieldError names the key as written)."""
    out = dict(data)
    foreign = next((key for key in data if key in FOREIGN_HINTS), None)
    if foreign is not None:
        raise FieldError(foreign, f"not a sysnoise field ({FOREIGN_HINTS[foreign]})")

    def take(foreign: str, native: str, value: Any) -> None:
        if native in data:
            raise FieldError(foreign, f"gives {native} a second time: keep one of {foreign} and {native}")
        out.pop(foreign)
        out[native] = value

    if "interpolation" in out:  # timm / torchvision: applied to PIL images, i.e. Pillow's filters
        take("interpolation", "resize", _resize_from("interpolation", out["interpolation"]))
    if "resample" in out:  # Hugging Face: a PIL.Image.Resampling value (or its name)
        value = out["resample"]
        name = PIL_RESAMPLE.get(value) if isinstance(value, int) else value
        take("resample", "resize", _resize_from("resample", name if name is not None else value))
    if "crop_mode" in out:
        mode = out["crop_mode"]
        if not isinstance(mode, str) or mode not in TIMM_CROP_MODES:
            raise FieldError(
                "crop_mode",
                f"timm's crop_mode {mode!r} has no catalogue crop (known: "
                f"{', '.join(TIMM_CROP_MODES)}); write crop: one of the crop options",
            )
        take("crop_mode", "crop", TIMM_CROP_MODES[mode])
    size = out.get("input_size")
    if isinstance(size, (list, tuple)):  # timm's (channels, height, width)
        if len(size) != 3 or size[1] != size[2]:
            raise FieldError("input_size", f"{list(size)}: sysnoise inputs are square; write input_size: SIDE")
        out["input_size"] = size[1]
    scaled = []
    for foreign, native in (("image_mean", "mean"), ("image_std", "std")):
        if foreign in out:
            values = out[foreign]
            if not _numbers(values) or not all(0 <= v <= 1 for v in values):
                raise FieldError(
                    foreign,
                    f"{values!r}: Hugging Face's {foreign} is three values in 0-1 units; "
                    f"for 0-255 pixel units write {native}",
                )
            take(foreign, native, _scaled(values))
            scaled.append(f"{foreign} {list(values)} as {native} {out[native]}")
    if scaled:
        warnings.warn(f"read 0-1 units x255 as sysnoise's 0-255 pixel units: {'; '.join(scaled)}", stacklevel=2)
    _refuse_zero_to_one(data, out)
    check_fields(out)
    return out


def _refuse_zero_to_one(data: dict, out: dict) -> None:
    """A mean of fractions or a std below 1, written as sysnoise's mean/std, is a 0-1 value: refused
    with the 0-255 values (a zero mean and a std of 1 mean the same in both units and are kept)."""
    mean, std = data.get("mean"), data.get("std")
    fractions = _numbers(mean) and all(0 <= v <= 1 for v in mean) and any(v > 0 for v in mean)
    if fractions or (_numbers(std) and std and all(0 < v < 1 for v in std)):
        field = "mean" if fractions else "std"
        fixed = "; ".join(f"{k}: {_scaled(out[k])}" for k in ("mean", "std") if _numbers(data.get(k)))
        raise FieldError(
            field,
            f"{data[field]} looks like 0-1 units (timm, torchvision); sysnoise's mean and std "
            f"are in 0-255 pixel units: write {fixed} (x255), or give the 0-1 values as "
            "image_mean / image_std",
        )


def load_pipeline(path: str | Path, *, base: Pipeline | None = None) -> Pipeline:
    """A user's YAML/JSON pipeline file (other tools' spellings translated), every field checked."""
    try:
        return Pipeline.load(path, base=base, prepare=user_spellings)
    except ValueError as err:
        raise UserInputError(str(err)) from None


def check_noise_specs(specs: Iterable[str]) -> None:
    """Every noise (and option) named exists; a free-form value (stored=DIR) names what is there."""
    for spec in specs:
        noise, options = parse_noise_spec(spec)
        for option in options or []:
            if not noise.free_form and option not in noise.options():
                raise UserInputError(
                    f"--noise {spec}: {option!r} is not an option of noise {noise.name!r}; "
                    f"{nearest(option, noise.options())}"
                )
        for option in noise.chosen(options):
            validate_pipeline(noise.apply(Pipeline(), option), f"--noise {spec}")


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(device: str) -> None:
    """A torch device this machine has: `cuda` without a visible GPU is refused before any work."""
    import torch

    try:
        kind = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        close = difflib.get_close_matches(str(device).split(":")[0], DEVICE_TYPES, n=2, cutoff=0.3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserInputError(f"--device {device!r} is not a torch device; {hint}(cpu, cuda, cuda:N, mps)") from None
    if kind.type == "cpu":
        return
    if kind.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserInputError(
                f"--device {device}: no CUDA GPU is visible here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda}); use --device cpu"
            )
        if kind.index is not None and kind.index >= count:
            raise UserInputError(f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
        return
    if kind.type == "mps" and torch.backends.mps.is_available():
        return
    raise UserInputError(
        f"--device {device}: not available here; use one of {', '.join(DEVICE_TYPES)} that this "
        "machine has (cpu always)"
    )


def check_out(out: str | Path) -> None:
    """The results folder is a folder that can be written (or can be made): checked before any model
    loads, by writing and removing a probe file in it or in its nearest existing parent."""
    out = Path(out)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == out else f"is inside {existing}, which is a file"
        raise UserInputError(f"--out {out}: {what}; give a folder for the results")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        where = "" if existing == out else f" (its parent {existing} exists)"
        raise UserInputError(
            f"--out {out}: cannot write there{where}: {err.strerror or err}; give a folder you can write"
        ) from None


def check_run(
    *,
    model: Any = None,
    reference: Pipeline | None = None,
    deploy: Any = None,
    noises: Iterable[str] = (),
    stepwise: Any = None,
    device: str = "cpu",
    out: str | Path | None = None,
) -> None:
    """Everything a run is given that can be checked before the model loads and the data is read:
    the reference (given, or a wrapped model's own), the deployment pipeline, every noise and
    stepwise name, the device and the results folder."""
    given = [("the model's reference", getattr(model, "reference", None)), ("reference", reference), ("deploy", deploy)]
    for source, pipeline in given:
        if isinstance(pipeline, Pipeline):
            validate_pipeline(pipeline, source)
        elif isinstance(pipeline, (str, Path)):
            load_pipeline(pipeline)
    check_noise_specs(list(noises) + (list(stepwise) if isinstance(stepwise, (list, tuple)) else []))
    check_device(device)
    if out is not None:
        check_out(out)
