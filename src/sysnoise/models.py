"""Models by name: the embedded zoo, torchvision/timm architectures (weights from a local file or the
library's own cache), Hugging Face image classifiers, or any torch.nn.Module handed in through the
Python API. Each comes with its reference pipeline and where each of its fields came from.

Weights are read with safetensors or `torch.load(weights_only=True)`, never unrestricted pickle:
a weights file is data from somewhere else and must not be able to run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sysnoise import (
    extras,
    hf_vision,  # transformers: an optional dependency
    reference_sources,
)
from sysnoise.errors import UserInputError
from sysnoise.inference.openvino_runtime import load_ir_file
from sysnoise.inference.runtimes import fixed_size, load_onnx_file
from sysnoise.loaded_model import MODELS, LoadedModel, hf_cache_path, imagenet_names
from sysnoise.pipeline.spec import Pipeline
from sysnoise.reference_sources import ResolvedReference, attributed
from sysnoise.tasks import detection_heads, segmentation_heads
from sysnoise.validate import load_pipeline
from sysnoise.weights import load_into, load_state_dict, sha256_file


def _weights_or_cache(given: Path | None, cached: Path | None, name: str, expected: str) -> Path:
    """The user's weights file, else the one a library cache holds; nothing is downloaded."""
    if given is not None:
        return given
    if cached is not None and cached.is_file():
        return cached
    raise UserInputError(
        f"{name}: no weights given and none in the local cache (expected {expected}); pass --weights PATH "
        "(a local state_dict or .safetensors); nothing is downloaded at run time."
    )


def _timm_model(arch: str, weights: Path | None, num_classes: int | None) -> LoadedModel:
    """timm:ARCH[.TAG]: the architecture, its weights (--weights, else the Hugging Face cache of the
    tag's hf_hub_id) and its reference from timm's own data config for that tag."""
    extras.require("timm", "timm models")
    import timm
    import timm.data

    try:
        probe = timm.create_model(arch, pretrained=False)
    except RuntimeError as err:  # timm's "Unknown model"
        raise UserInputError(f"timm has no model {arch!r}: {err}") from None
    hub_id = probe.pretrained_cfg.get("hf_hub_id")
    weights = _weights_or_cache(
        weights,
        _hf_cached_weights(hub_id) if hub_id else None,
        f"timm:{arch}",
        hf_cache_path(hub_id, "model.safetensors") if hub_id else "a weights file",
    )
    state = load_state_dict(weights)
    classes = num_classes or _infer_num_classes(state) or 1000
    module = probe if classes == probe.num_classes else timm.create_model(arch, pretrained=False, num_classes=classes)
    load_into(module, state, weights)
    tag = f"{probe.pretrained_cfg.get('architecture', arch)}.{probe.pretrained_cfg.get('tag', '')}".rstrip(".")
    resolved = reference_sources.from_timm(timm.data.resolve_model_data_config(module), f"timm pretrained_cfg {tag}")
    return LoadedModel(
        name=f"timm:{arch}",
        module=module.eval(),
        reference=resolved.pipeline,
        reference_provenance=dict(resolved.provenance),
        num_classes=classes,
        class_names=imagenet_names() if classes == 1000 else None,
        source=str(weights),
        weights_sha256=sha256_file(weights),
    )


def _hf_cached_weights(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def _torchvision_weights_enum(arch: str, enum_name: str):
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch)
    except ValueError as err:
        raise UserInputError(f"torchvision has no model {arch!r}: {err}") from None
    if enum_name not in enum.__members__:
        raise UserInputError(
            f"torchvision:{arch}.{enum_name}: {enum.__name__} has no {enum_name!r}; "
            f"known: {', '.join(enum.__members__)}"
        )
    return enum[enum_name]


def torchvision_cache_path(enum) -> Path:
    """torch.hub's checkpoint file for a weights enum: the URL's file name under hub/checkpoints."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / enum.url.rsplit("/", 1)[-1]


def _torchvision_model(arch: str, enum_name: str | None, weights: Path | None, num_classes: int | None) -> LoadedModel:
    """torchvision:ARCH[.WEIGHTS_ENUM]: the enum's transforms() give the reference and its file in
    torch.hub's cache the weights (unless --weights). Without an enum the reference is sysnoise's
    default, attributed so."""
    import torchvision

    enum = _torchvision_weights_enum(arch, enum_name) if enum_name else None
    if enum is None and weights is None:
        raise UserInputError(
            f"torchvision:{arch} needs --weights PATH (a local state_dict), or a weights enum in "
            f"the name (torchvision:{arch}.IMAGENET1K_V1) whose file is in torch.hub's cache; "
            "nothing is downloaded at run time."
        )
    expected = str(torchvision_cache_path(enum)) if enum else "a weights file"
    weights = _weights_or_cache(
        weights, torchvision_cache_path(enum) if enum else None, f"torchvision:{arch}.{enum_name}", expected
    )
    resolved = reference_sources.from_torchvision(enum.transforms(), f"torchvision {enum}") if enum else None
    if (task := _dense_task(arch)) is not None:
        return _torchvision_dense(task, arch, weights, resolved)
    state = load_state_dict(weights)
    classes = num_classes or _infer_num_classes(state) or 1000
    try:
        module = torchvision.models.get_model(arch, weights=None, num_classes=classes)
    except ValueError as err:
        raise UserInputError(f"torchvision has no model {arch!r}: {err}") from None
    load_into(module, state, weights)
    names = (
        list(enum.meta["categories"])
        if enum and len(enum.meta.get("categories", ())) == classes
        else (imagenet_names() if classes == 1000 else None)
    )
    resolved = resolved or reference_sources.ResolvedReference(Pipeline(), {})
    return LoadedModel(
        name=f"torchvision:{arch}" + (f".{enum_name}" if enum_name else ""),
        module=module.eval(),
        reference=resolved.pipeline,
        reference_provenance=dict(resolved.provenance),
        num_classes=classes,
        class_names=names,
        source=str(weights),
        weights_sha256=sha256_file(weights),
    )


def _dense_task(arch: str) -> str | None:
    """'detection' / 'segmentation' for torchvision's detection and segmentation architectures."""
    import torchvision

    for task, module in (
        ("detection", torchvision.models.detection),
        ("segmentation", torchvision.models.segmentation),
    ):
        if arch in torchvision.models.list_models(module=module):
            return task
    return None


def _torchvision_dense(
    task: str, arch: str, weights: Path, resolved: reference_sources.ResolvedReference | None
) -> LoadedModel:
    """A torchvision detector or segmenter; its reference is its weights enum's transforms() where
    they resize (segmentation), else what its own transform does (tasks/detection_heads.reference_pipeline,
    tasks/segmentation.reference_pipeline)."""
    import torchvision

    state = load_state_dict(weights)
    loader = detection_heads if task == "detection" else segmentation_heads
    module, classes = loader.load_torchvision(arch, weights, state)
    try:  # category names ship with torchvision's code (no download)
        names = list(torchvision.models.get_model_weights(arch).DEFAULT.meta["categories"])
    except Exception:
        names = None
    resolved = resolved or reference_sources.attributed(
        loader.reference_pipeline(module), f"{arch}'s own {task} transform"
    )
    return LoadedModel(
        name=f"torchvision:{arch}",
        module=module,
        reference=resolved.pipeline,
        reference_provenance=dict(resolved.provenance),
        num_classes=classes,
        class_names=names if names and len(names) == classes else None,
        source=str(weights),
        weights_sha256=sha256_file(weights),
    )


def _deployed_model(library: str, path: str) -> LoadedModel:
    """onnx:FILE.onnx or openvino:FILE.xml: a deployed file alone, on its engine, as the model under
    test. The file does not say how its inputs were made: the reference is sysnoise's default
    pipeline, at the file's input size when it fixes one; --reference names the pipeline it was
    trained with."""
    extra, engine, load_file = {
        "onnx": ("onnx", "ONNX Runtime", load_onnx_file),
        "openvino": ("openvino", "OpenVINO", load_ir_file),
    }[library]
    extras.require(extra, f"--model {library}:{path}")
    try:
        module = load_file(path)
    except UserInputError:
        raise
    except Exception as err:  # the engine's own error types: a file it cannot run
        raise UserInputError(f"{path}: {engine} cannot run it as a model of one image batch ({err})") from None
    height, width = (fixed_size(d) for d in (module.input_shape + [None] * 4)[2:4])
    if height and width and height != width:
        raise UserInputError(
            f"{path}: a fixed input of {height}x{width} pixels; sysnoise inputs are square: "
            "export it with a square (or dynamic) input size"
        )
    resolved = ResolvedReference(Pipeline(), {})
    if height:
        resolved = resolved.overridden(Pipeline(input_size=height), f"{path}'s fixed input shape")
    return LoadedModel(
        name=f"{library}:{path}",
        module=module.eval(),
        reference=resolved.pipeline,
        reference_provenance=dict(resolved.provenance),
        num_classes=classes_from_output(module, resolved.pipeline.input_size),
        source=str(path),
        weights_sha256=module.sysnoise_info["sha256"],
    )


def _infer_num_classes(state: dict) -> int | None:
    last = [v for k, v in state.items() if k.endswith(".weight") and getattr(v, "ndim", 0) == 2]
    return int(last[-1].shape[0]) if last else None


def load_model(
    name: str,
    weights: str | Path | None = None,
    *,
    reference: Pipeline | str | Path | None = None,
    num_classes: int | None = None,
) -> LoadedModel:
    """Load `name`: a zoo name (see `sysnoise list`), `torchvision:ARCH[.WEIGHTS_ENUM]`,
    `timm:ARCH[.TAG]`, a Hugging Face image classifier (`hf:FOLDER_OR_CACHED_NAME`, or a folder
    with config.json and preprocessor_config.json), or a deployed `onnx:FILE.onnx` on ONNX Runtime or
    `openvino:FILE.xml` (an OpenVINO IR) on OpenVINO (reference: sysnoise's default unless given).
    Its reference pipeline comes from where the model says (zoo card, timm data config, torchvision
    transforms, HF processor config); `reference` (a Pipeline or a YAML/JSON file, fields it leaves
    out from the model's) replaces it."""
    weights = Path(weights) if weights is not None else None
    library, _, arch = name.partition(":")
    if library == "hf" or (not arch and (Path(name) / "preprocessor_config.json").is_file()):
        loaded = hf_vision.load_image_classifier(arch or name)
    elif library in ("onnx", "openvino") and arch:
        if weights is not None:
            raise UserInputError(f"{name}: a deployed file carries its own weights; leave out --weights")
        loaded = _deployed_model(library, arch)
    elif library == "timm" and arch:
        loaded = _timm_model(arch, weights, num_classes)
    elif library == "torchvision" and arch:
        base, _, enum_name = arch.partition(".")
        loaded = _torchvision_model(base, enum_name or None, weights, num_classes)
    elif arch:
        raise UserInputError(
            f"unknown model library {library!r} in {name!r}; use torchvision:ARCH[.WEIGHTS], "
            "timm:ARCH[.TAG], hf:FOLDER, onnx:FILE.onnx or openvino:FILE.xml"
        )
    else:
        loader: Callable[..., LoadedModel] = MODELS(name)
        loaded = loader(weights)
        if not loaded.reference_provenance:
            loaded.reference_provenance = dict(attributed(loaded.reference, f"zoo model {name} (its card)").provenance)
    return with_reference(loaded, reference)


def with_reference(loaded: LoadedModel, reference: Pipeline | str | Path | None) -> LoadedModel:
    """`loaded` measured against `reference` instead of its own: a Pipeline (Python API) or a
    YAML/JSON file whose missing fields are the model's own; each field's source is kept."""
    if reference is None:
        return loaded
    if isinstance(reference, Pipeline):
        pipeline, source = reference, "reference pipeline given to the API"
    else:
        pipeline = load_pipeline(reference, base=loaded.reference)
        source = f"--reference {reference}"
    resolved = loaded.resolved_reference().overridden(pipeline, source)
    loaded.reference, loaded.reference_provenance = resolved.pipeline, dict(resolved.provenance)
    return loaded


def load(model, weights=None, reference: Pipeline | str | Path | None = None) -> LoadedModel:
    """The model under test (a name, a LoadedModel or an nn.Module) with its reference pipeline:
    its own, or `reference` (a Pipeline or a YAML/JSON file over the model's own)."""
    if isinstance(model, LoadedModel):
        return with_reference(model, reference)
    if isinstance(model, str):
        return load_model(model, weights, reference=reference)
    return wrap_module(model, reference=reference)


def wrap_module(
    module,
    *,
    name: str = "model",
    reference: Pipeline | None = None,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
) -> LoadedModel:
    """Any torch.nn.Module as a LoadedModel, for the Python API. Without `reference`, the pipeline
    is sysnoise's default (ImageNet 224, Pillow bilinear): pass the one the model was trained with."""
    loaded = LoadedModel(name=name, module=module.eval(), reference=Pipeline(), num_classes=0, class_names=class_names)
    loaded = with_reference(loaded, reference)
    loaded.num_classes = num_classes or (
        len(class_names) if class_names else classes_from_output(loaded.module, loaded.reference.input_size)
    )
    return loaded


def classes_from_output(module, input_size: int) -> int:
    """A classifier's class count from the width of its output on one blank input; 1000 (ImageNet)
    for a module whose output is not one row of logits (detectors, segmenters: their tasks read
    the classes from the head)."""
    import torch

    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, input_size, input_size))
    except Exception:
        return 1000
    return int(out.shape[1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else 1000
