"""Where a model says how it was evaluated, read into a reference Pipeline with each field's source.

The reference is the system every delta is measured against, so it comes from the model itself:
timm's pretrained data config, a torchvision weights enum's `transforms()`, a Hugging Face
`preprocessor_config.json`. Each maps onto catalogue options that compute the same pixels (the
tests compare them with the libraries' own transforms); a setting no option reproduces is refused
with what to do instead, never approximated silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from sysnoise.errors import UserInputError
from sysnoise.pipeline.spec import Pipeline

# timm / torchvision interpolation names, applied to PIL images by their eval transforms: Pillow's filters.
INTERPOLATIONS = {name: f"pillow-{name}" for name in ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")}
# PIL.Image.Resampling values, as Hugging Face processor configs store `resample`
PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
# timm's crop_mode -> the crop option that computes what transforms_imagenet_eval does ('border'
# pads with the mean colour around a longer side of size / crop_pct: no option does that)
TIMM_CROP_MODES = {"center": "shorter-centre-crop", "squash": "square-resize-crop"}
DEFAULT_SOURCE = "sysnoise default"


@dataclass(frozen=True)
class ResolvedReference:
    """A reference pipeline and, for each of its fields, where the value came from."""

    pipeline: Pipeline
    provenance: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        filled = {name: self.provenance.get(name, DEFAULT_SOURCE) for name in self.pipeline.to_dict()}
        object.__setattr__(self, "provenance", MappingProxyType(filled))

    def overridden(self, pipeline: Pipeline, source: str) -> "ResolvedReference":
        """`pipeline` (e.g. a --reference file merged over this one); fields whose value it changes
        are attributed to `source`, the others keep their origin."""
        old = self.pipeline.to_dict()
        new = pipeline.to_dict()
        provenance = {name: (source if new[name] != old[name] else self.provenance[name]) for name in new}
        return ResolvedReference(pipeline, provenance)

    def describe(self) -> list[dict[str, Any]]:
        """One row per field: name, value, source (for the run's first lines and results.json)."""
        return [
            {"field": name, "value": value, "source": self.provenance[name]}
            for name, value in self.pipeline.to_dict().items()
        ]


def attributed(pipeline: Pipeline, source: str) -> ResolvedReference:
    """Every field of `pipeline` from one source (a zoo model's card, a detector's own transform)."""
    return ResolvedReference(pipeline, {name: source for name in pipeline.to_dict()})


def _refuse(source: str, setting: str, why: str) -> UserInputError:
    return UserInputError(
        f"{source}: {setting} has no sysnoise equivalent ({why}); write the pipeline to measure against in a "
        "--reference YAML file (see `sysnoise list` for the options), and it is used instead"
    )


def _resize_option(name: str, source: str, setting: str) -> str:
    option = INTERPOLATIONS.get(str(name).lower())
    if option is None:
        raise _refuse(source, f"{setting} {name!r}", f"known: {', '.join(INTERPOLATIONS)}")
    return option


def _pixels(values, scale: float) -> tuple[float, float, float]:
    """Mean/std given for 0-1 pixels as 0-255 pixel units (the Pipeline's)."""
    return tuple(round(float(v) * scale, 6) for v in values)


def _square(size, source: str, setting: str) -> int:
    sides = {int(s) for s in (size if isinstance(size, (list, tuple)) else (size,))}
    if len(sides) != 1:
        raise _refuse(source, f"{setting} {tuple(size)}", "sysnoise inputs are square")
    return sides.pop()


def crop_pct_for(size: int, resize: int) -> float:
    """The crop_pct whose floor(size / crop_pct) is exactly `resize` (size / resize can land a hair
    below it in floating point, e.g. 224 / (224 / 232))."""
    pct = size / resize
    while math.floor(size / pct) < resize:
        pct = math.nextafter(pct, 0.0)
    return pct


def from_timm(data_config: Mapping[str, Any], source: str) -> ResolvedReference:
    """timm's eval transform (timm.data.transforms_imagenet_eval) for `resolve_model_data_config`'s
    dict: resize on PIL images with `interpolation`, then by crop_mode: center (shorter side to
    floor(size / crop_pct), centre crop), squash (both sides to it, centre crop)."""
    size = _square(data_config["input_size"][1:], source, "input_size")
    crop_pct = float(data_config.get("crop_pct") or 0.875)
    crop_mode = data_config.get("crop_mode") or "center"
    if crop_mode not in TIMM_CROP_MODES:
        raise _refuse(
            source,
            f"crop_mode {crop_mode!r}",
            "timm pads with the mean colour; sysnoise's letterbox pads grey 114 around a longer side of exactly size",
        )
    pipeline = Pipeline(
        resize=_resize_option(data_config.get("interpolation", "bilinear"), source, "interpolation"),
        crop=TIMM_CROP_MODES[crop_mode],
        input_size=size,
        crop_pct=crop_pct,
        mean=_pixels(data_config["mean"], 255),
        std=_pixels(data_config["std"], 255),
    )
    where = f"{source} (timm data config)"
    provenance = {name: where for name in ("resize", "crop", "input_size", "crop_pct", "mean", "std")}
    return ResolvedReference(pipeline, provenance)


def from_torchvision(transforms, source: str) -> ResolvedReference | None:
    """A torchvision weights enum's `transforms()`: ImageClassification (resize the shorter side to
    resize_size on the PIL image, centre crop crop_size) or SemanticSegmentation (shorter side to
    resize_size, no crop). Detection presets resize inside the model: None (the model says)."""
    kind = type(transforms).__name__
    if kind == "ObjectDetection":
        return None
    if kind not in ("ImageClassification", "SemanticSegmentation"):
        raise _refuse(source, f"transforms {kind}", "known presets: ImageClassification, SemanticSegmentation")
    if getattr(transforms, "antialias", True) is False:
        raise _refuse(source, "antialias=False", "Pillow always antialiases")
    resize_size = transforms.resize_size
    if resize_size is None or len(resize_size) != 1:
        raise _refuse(source, f"resize_size {resize_size}", "expected one shorter-side length")
    resize = int(resize_size[0])
    interpolation = transforms.interpolation.value
    mean, std = _pixels(transforms.mean, 255), _pixels(transforms.std, 255)
    if kind == "SemanticSegmentation":
        pipeline = Pipeline(
            resize=_resize_option(interpolation, source, "interpolation"),
            crop="shorter-side",
            input_size=resize,
            crop_pct=1.0,
            mean=mean,
            std=std,
        )
    else:
        size = _square(transforms.crop_size, source, "crop_size")
        pipeline = Pipeline(
            resize=_resize_option(interpolation, source, "interpolation"),
            crop="shorter-centre-crop",
            input_size=size,
            crop_pct=crop_pct_for(size, resize),
            mean=mean,
            std=std,
        )
    where = f"{source}.transforms()"
    return ResolvedReference(
        pipeline, {name: where for name in ("resize", "crop", "input_size", "crop_pct", "mean", "std")}
    )


HF_KNOWN_KEYS = {
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "crop_pct",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_convert_rgb",
    "image_processor_type",
    "processor_class",
    "feature_extractor_type",
}


def _hf_side(size: Mapping[str, Any], source: str, setting: str) -> int:
    return _square([size["height"], size["width"]], source, setting)


def from_hf_processor(config: Mapping[str, Any], source: str) -> ResolvedReference:
    """A Hugging Face image processor config (preprocessor_config.json) as its PIL path computes:
    resize (size {height, width}: both sides; {shortest_edge}: the shorter side, with crop_pct as
    ConvNeXt's processor reads it), centre crop with floor offsets, rescale, normalise."""
    unknown = sorted(k for k, v in config.items() if k not in HF_KNOWN_KEYS and v not in (False, None))
    if unknown:
        raise _refuse(source, f"processor setting(s) {unknown}", f"understood: {', '.join(sorted(HF_KNOWN_KEYS))}")
    if not config.get("do_resize", True):
        raise _refuse(source, "do_resize false", "inputs of the image's own size are not batchable")
    size = config.get("size") or {}
    resize = _resize_option(PIL_RESAMPLE.get(config.get("resample", 2), config.get("resample")), source, "resample")
    crop_size = config.get("crop_size") if config.get("do_center_crop") else None
    if "shortest_edge" in size:
        short = int(size["shortest_edge"])
        if config.get("crop_pct") is not None:  # ConvNeXt: below 384 resize to short / crop_pct, crop short
            if short >= 384:
                geometry = {"crop": "squash", "input_size": short, "crop_pct": 1.0}
            else:
                geometry = {
                    "crop": "shorter-centre-crop-floor",
                    "input_size": short,
                    "crop_pct": crop_pct_for(short, int(short / float(config["crop_pct"]))),
                }
        elif crop_size:
            side = _hf_side(crop_size, source, "crop_size")
            geometry = {"crop": "shorter-centre-crop-floor", "input_size": side, "crop_pct": crop_pct_for(side, short)}
        else:
            raise _refuse(source, "shortest_edge without a centre crop", "inputs would not be square")
    elif "height" in size and "width" in size:
        side = _hf_side(size, source, "size")
        crop = _hf_side(crop_size, source, "crop_size") if crop_size else side
        if crop != side:
            if (side - crop) % 2:  # HF floors the offset, square-resize-crop rounds half to even
                raise _refuse(source, f"crop {crop} of {side}", "an odd margin is split differently")
            geometry = {"crop": "square-resize-crop", "input_size": crop, "crop_pct": crop_pct_for(crop, side)}
        else:
            geometry = {"crop": "squash", "input_size": side, "crop_pct": 1.0}
    else:
        raise _refuse(source, f"size {dict(size)}", "expected {height, width} or {shortest_edge}")
    scale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
    if config.get("do_normalize", True):
        mean, std = config.get("image_mean", (0.5, 0.5, 0.5)), config.get("image_std", (0.5, 0.5, 0.5))
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    # (x * scale - m) / s  ==  (x - m / scale) / (s / scale) in 0-255 pixel units
    pipeline = Pipeline(resize=resize, mean=_pixels(mean, 1 / scale), std=_pixels(std, 1 / scale), **geometry)
    return ResolvedReference(
        pipeline, {name: source for name in ("resize", "crop", "input_size", "crop_pct", "mean", "std")}
    )
