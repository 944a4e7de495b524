"""ONNX Runtime for causal language models, registered into RUNTIMES.

The vision runtimes export one image tensor; a causal LM takes token ids and an attention mask.
Here the transformers model is exported without a KV cache (input_ids + attention_mask -> logits,
batch and sequence dynamic; `onnx_export.export_causal_lm`) to a file in a temporary folder,
loaded by ONNX Runtime on CPU, and the folder removed. The wrapper is called like the HF model
(`model(input_ids=..., attention_mask=..., use_cache=False).logits`), so the language scorer
treats it as any other model stage.

- onnxruntime-lm:      float32, graph optimisations ORT_ENABLE_ALL (as the vision runtime)
- onnxruntime-lm-int8: the same export through onnxruntime.quantization.quantize_dynamic, the
                       deployment path for transformer LMs on a CPU: every MatMul with a constant
                       weight (the projections and the output head) gets INT8 weights, per output
                       channel, symmetric; activations are quantised to UINT8 at run time, one
                       scale and zero point per tensor (DynamicQuantizeLinear + MatMulInteger).
                       Attention's activation-activation MatMuls and the embedding stay float32.
                       No calibration data.
- onnxruntime-lm-int8-reduce-range: the same with 7-bit weights (reduce_range=True), ONNX
                       Runtime's advice for x86 CPUs without VNNI. There its U8S8 kernel sums pairs
                       of uint8 x int8 products in int16 (vpmaddubsw), which saturates with full
                       8-bit weights: the 8-bit option then computes something other than the
                       integer arithmetic it describes (docs/language.md: measured on one MatMul
                       here). With VNNI both should be exact. `info` records the CPU's flags.

Every entry's `applies` meta says it acts on transformers causal LMs only (a vision model reports
it as n/a), as the LM precisions of lm_quant do; the vision runtimes say the converse.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path

from sysnoise.inference import onnx_export
from sysnoise.inference.runtimes import ONNX, RUNTIMES, session_options
from sysnoise.language_models import is_causal_lm as check

INT8_SETTINGS = {
    "tool": "onnxruntime.quantization.quantize_dynamic",
    "op_types_to_quantize": ["MatMul"],
    "weight_type": "QInt8",
    "per_channel": True,  # per output channel of each MatMul weight
    "activations": "QUInt8, asymmetric, one scale per tensor, computed at run time",
    "MatMulConstBOnly": True,  # quantize_dynamic's default: weights only, not QK^T or PV
    "pre_process": "none",
}


def is_causal_lm(model) -> bool:
    return check(model)


def _register(name: str, description: str):
    return RUNTIMES.register(name, description, family="lm", applies=is_causal_lm, **ONNX)


def _ort_causal_lm(path: Path, info: dict):
    """ONNX Runtime session on the exported file, wrapped as the HF model is called."""
    import onnxruntime as ort
    import torch
    from transformers.modeling_outputs import CausalLMOutputWithPast

    started = time.perf_counter()
    session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if names != ["input_ids", "attention_mask"]:
        raise ValueError(f"the exported LM takes {names}; expected input_ids and attention_mask")

    class OnnxRuntimeCausalLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.session = session
            self.sysnoise_info = info

        def forward(self, input_ids=None, attention_mask=None, use_cache=False, **_ignored):
            # no KV cache: every call scores whole sequences, as the language scorer asks
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            feed = {
                "input_ids": input_ids.detach().cpu().long().numpy(),
                "attention_mask": attention_mask.detach().cpu().long().numpy(),
            }
            logits = torch.from_numpy(self.session.run(None, feed)[0]).to(input_ids.device)
            return CausalLMOutputWithPast(logits=logits)

        def __deepcopy__(self, memo):  # a session is not copyable; it is stateless for inference
            return self

    info.update(
        {
            "runtime": "onnxruntime",
            "onnxruntime": ort.__version__,
            "providers": session.get_providers(),
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "session_seconds": round(time.perf_counter() - started, 2),
        }
    )
    return OnnxRuntimeCausalLM()


def _op_counts(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def cpu_int8_flags() -> dict:
    """The x86 flags that decide how ONNX Runtime multiplies uint8 by int8 (Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return {name: name in flags for name in ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")}


def _quantize(fp32: Path, out: Path, reduce_range: bool, external: bool) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logger = logging.getLogger()  # quantize_dynamic logs "please run pre-processing" on the root logger
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                fp32,
                out,
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True},
                use_external_data_format=external,
            )
    finally:
        logger.setLevel(level)


def build_ort_lm(model, int8: bool = False, reduce_range: bool = False):
    """Export `model`, optionally quantize it, and load it on ONNX Runtime. The files live in a
    temporary folder (TMPDIR) removed before this returns: the session holds what it needs."""
    if not is_causal_lm(model):
        raise ValueError("the LM runtimes take a transformers causal LM (token ids and attention mask in)")
    info: dict = {"export": onnx_export.describe_causal_lm()}
    with tempfile.TemporaryDirectory(prefix="sysnoise-ort-lm-") as tmp:
        fp32 = Path(tmp, "fp32", "model.onnx")
        fp32.parent.mkdir()
        started = time.perf_counter()
        onnx_export.export_causal_lm(model, fp32)
        info["export"]["seconds"] = round(time.perf_counter() - started, 2)
        info["export"]["bytes"] = _size(fp32.parent)
        source = fp32
        if int8:
            source = Path(tmp, "int8", "model.onnx")
            source.parent.mkdir()
            started = time.perf_counter()
            _quantize(fp32, source, reduce_range, external=info["export"]["bytes"] > 1_800_000_000)
            ops = _op_counts(source)
            info["quantization"] = {
                **INT8_SETTINGS,
                "reduce_range": reduce_range,
                "weight_bits": 7 if reduce_range else 8,
                "seconds": round(time.perf_counter() - started, 2),
                "bytes": _size(source.parent),
                "int8_matmuls": ops.get("MatMulInteger", 0),
                "float_matmuls": ops.get("MatMul", 0),
                "cpu_flags": cpu_int8_flags(),
            }
        return _ort_causal_lm(source, info)


@_register(
    "onnxruntime-lm",
    "causal LM exported with torch.onnx.export (ids + mask -> logits, no KV cache), "
    "run by ONNX Runtime on CPU, float32",
)
def onnxruntime_lm(model, example=None, calibration=None):
    return build_ort_lm(model, int8=False)


@_register(
    "onnxruntime-lm-int8",
    "causal LM on ONNX Runtime CPU, INT8 by quantize_dynamic: MatMul weights "
    "per-channel INT8, activations UINT8 per tensor at run time (no calibration)",
)
def onnxruntime_lm_int8(model, example=None, calibration=None):
    return build_ort_lm(model, int8=True)


@_register(
    "onnxruntime-lm-int8-reduce-range",
    "as onnxruntime-lm-int8 with 7-bit weights (reduce_range): ONNX "
    "Runtime's advice for x86 CPUs without VNNI, where 8-bit weights saturate its int16 sums",
)
def onnxruntime_lm_int8_reduce_range(model, example=None, calibration=None):
    return build_ort_lm(model, int8=True, reduce_range=True)
