"""ONNX Runtime for causal LMs (inference/lm_runtimes.py): the exported model scores as torch eager
does, padding included; its INT8 versions change the logits but not the greedy next tokens where the
margins are wide; the runtimes fit LMs only and the vision runtimes images only; a run records what
was built, and a runtime that cannot be built is a failed column with its reason."""

import json
import math
import tempfile

import numpy as np
import pytest
import torch

from sysnoise import api, measure
from sysnoise.analysis import language as lang
from sysnoise.engine.execute import EngineOptions
from sysnoise.inference import lm_runtimes, onnx_export
from sysnoise.inference.build import build_model
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.language import Language, Request, TextItem, encode, score

from .conftest import CHARS, bigram_model

FP32_TOLERANCE = 1e-4  # summed log-likelihoods, nats: float32 reordering (measured: below 1e-5)
LM_RUNTIMES = ("onnxruntime-lm", "onnxruntime-lm-int8", "onnxruntime-lm-int8-reduce-range")
VISION_RUNTIMES = (
    "onnxruntime",
    "onnxruntime-int8-qdq",
    "onnxruntime-int8-qoperator",
    "openvino",
    "openvino-fp16",
    "openvino-int8-nncf",
)  # the default vision runtimes (ExecuTorch, ncnn, OpenVINO's bf16 hint, torch.ao: opt-in)


def _choices():
    """Hand-made multiple-choice items (PIQA prompts) of different lengths, so batches pad."""
    items = [
        ("q", "ab", "b"),
        ("what is it", "a cab", "abba"),
        ("x", "c", "a long answer here"),
        ("longer question text?", "ba", "ab ab ab"),
    ]
    return [
        TextItem(
            f"line {i}",
            "choice",
            (Request(f"Question: {g}\nAnswer:", " " + a), Request(f"Question: {g}\nAnswer:", " " + b)),
            0,
        )
        for i, (g, a, b) in enumerate(items, 1)
    ]


@pytest.fixture(scope="module")
def ort_tiny(tiny_lm):
    return build_model(tiny_lm.module, Pipeline(runtime="onnxruntime-lm"))


def test_ort_fp32_log_likelihoods_match_torch_eager(tokenizer, bigram, tiny_lm, ort_tiny):
    # the bigram model's log-likelihoods are known by hand (test_scoring.py): log 0.125 and log 0.1
    _, model = bigram
    sample = _choices()[0]
    out = score(build_model(model, Pipeline(runtime="onnxruntime-lm")), [encode(tokenizer, sample, 64)], 4, "cpu")
    np.testing.assert_allclose(out["loglik"][0, :2], [math.log(0.125), math.log(0.1)], atol=FP32_TOLERANCE)
    # a random two-layer Llama (attention and MLP at work), items padded in one batch
    encoded = [encode(tokenizer, s, 128) for s in _choices()]
    eager, ort = score(tiny_lm.module, encoded, 8, "cpu"), score(ort_tiny, encoded, 8, "cpu")
    np.testing.assert_allclose(ort["loglik"][:, :2], eager["loglik"][:, :2], atol=FP32_TOLERANCE, rtol=0)
    assert np.array_equal(ort["argmax"], eager["argmax"]) and np.array_equal(ort["greedy"], eager["greedy"])


def test_padding_gives_the_scores_of_unpadded_single_requests(tokenizer, ort_tiny):
    encoded = [encode(tokenizer, s, 128) for s in _choices()]
    lengths = {len(c) + len(t) for e in encoded for c, t in e.requests}
    assert len(lengths) > 4  # the premise: one batch of 8 requests holds padding
    batched = score(ort_tiny, encoded, 8, "cpu")
    single = score(ort_tiny, encoded, 1, "cpu")  # batch of one: no padding at all
    np.testing.assert_allclose(batched["loglik"][:, :2], single["loglik"][:, :2], atol=FP32_TOLERANCE, rtol=0)
    assert np.array_equal(batched["argmax"], single["argmax"])


def _peaked_lm():
    """A bigram model (conftest) whose next token is clear (p = 0.6 against 0.004 for the others),
    with the attention and MLP outputs made small but nonzero, so every projection INT8 quantizes
    takes part in the result."""
    vocab = len(CHARS)
    probs = np.full((vocab, vocab), 0.4 / (vocab - 1))
    probs[np.arange(vocab), (np.arange(vocab) * 7 + 3) % vocab] = 0.6
    torch.manual_seed(3)
    model = bigram_model(np.log(probs))
    with torch.no_grad():
        layer = model.model.layers[0]
        layer.self_attn.o_proj.weight.normal_(0, 0.02)
        layer.mlp.down_proj.weight.normal_(0, 0.02)
    return model


@pytest.mark.parametrize("runtime", ["onnxruntime-lm-int8", "onnxruntime-lm-int8-reduce-range"])
def test_ort_int8_changes_logits_but_keeps_the_next_tokens(tokenizer, runtime):
    model = _peaked_lm()
    info = {}
    int8 = build_model(model, Pipeline(runtime=runtime), info=info)
    quantization = info["runtime_detail"]["quantization"]
    assert quantization["int8_matmuls"] == 8  # q, k, v, o, gate, up, down and the output head
    assert quantization["float_matmuls"] == 2  # attention's QK^T and PV stay float
    ids = torch.randint(1, len(CHARS), (6, 40), generator=torch.Generator().manual_seed(0))  # no <eos>
    mask = torch.ones_like(ids)
    with torch.no_grad():
        fp32 = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        changed = int8(input_ids=ids, attention_mask=mask, use_cache=False).logits
    top2 = fp32.topk(2, dim=-1).values
    margin, change = float((top2[..., 0] - top2[..., 1]).min()), float((changed - fp32).abs().max())
    assert change > 1e-3  # INT8 moves the logits (float32 ONNX Runtime: about 1e-6)
    # the threshold: every float32 top-1 leads by at least `margin` nats and no logit moves by more
    # than `change`; a top-1 can flip only if 2 * change >= margin, so agreement must be complete
    assert 2 * change < margin
    texts = [
        TextItem(
            f"line {i}",
            "lastword",
            (Request("".join(CHARS[t] for t in row[:30]), "".join(CHARS[t] for t in row[30:])),),
            0,
        )
        for i, row in enumerate(ids.tolist())
    ]
    encoded = [encode(tokenizer, s, 64) for s in texts]
    reference, variant = score(model, encoded, 4, "cpu"), score(int8, encoded, 4, "cpu")
    assert lang.token_agreement(reference, variant) == 100.0
    assert not np.array_equal(reference["loglik"], variant["loglik"])


def test_reduce_range_int8_is_the_integer_arithmetic_it_describes(tmp_path):
    """One MatMul through quantize_dynamic with 7-bit weights: ONNX Runtime's result equals uint8
    activations times the stored int8 weights in exact integers, rescaled (float32 rounding only)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((256, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 64])],
        [numpy_helper.from_array(weight, "W")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "f.onnx")
    lm_runtimes._quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", reduce_range=True, external=False)
    stored = {i.name: numpy_helper.to_array(i) for i in onnx.load(tmp_path / "q.onnx").graph.initializer}
    q_weight = next(v for v in stored.values() if v.dtype == np.int8 and v.ndim == 2).astype(np.float64)
    w_scale = next(v for v in stored.values() if v.dtype == np.float32 and v.shape == (64,))
    assert np.abs(q_weight).max() <= 64  # 7 bits

    x = rng.standard_normal((32, 256)).astype(np.float32)
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    x_scale = np.float32((high - low) / 255)
    x_zero = np.clip(np.round(-low / x_scale), 0, 255)
    q_x = np.clip(np.round(x / x_scale) + x_zero, 0, 255)  # DynamicQuantizeLinear
    by_hand = ((q_x - x_zero) @ q_weight) * x_scale * w_scale
    session = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], by_hand, atol=1e-4, rtol=0)


def test_lm_runtimes_fit_lms_and_vision_runtimes_fit_images(tiny_lm):
    from sysnoise.models import wrap_module

    cnn = wrap_module(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10)))
    plan, rows = measure.plan_variants(cnn, ["runtime"], Pipeline())
    assert set(LM_RUNTIMES) <= set(rows[0]["not_applicable"])
    assert {v.option for v in plan.variants} == set(VISION_RUNTIMES)  # unchanged for vision
    plan, rows = measure.plan_variants(tiny_lm, ["runtime"], Pipeline(), stages=Language.stages)
    assert set(VISION_RUNTIMES) <= set(rows[0]["not_applicable"])
    assert {v.option for v in plan.variants} == set(LM_RUNTIMES)
    _, rows = measure.plan_variants(tiny_lm, ["runtime=torch-ao-int8"], Pipeline(), stages=Language.stages)
    assert rows[0]["not_applicable"] == ["torch-ao-int8"]  # decided without tracing the LM


def _piqa_file(tmp_path, n=6):
    rows = [{"goal": f"goal {i}", "sol1": "ab" * (i % 3 + 1), "sol2": "ba", "label": i % 2} for i in range(n)]
    path = tmp_path / "piqa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_language_run_records_the_runtime_and_leaves_no_files(tmp_path, tiny_lm, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the exports go
    options = EngineOptions(batch_size=4, workers=0, progress=False)
    results = api.run(
        tiny_lm,
        _piqa_file(tmp_path),
        task="language",
        noises=["runtime=onnxruntime-lm,onnxruntime-lm-int8"],
        out=tmp_path / "out",
        options=options,
    )
    assert list(scratch.iterdir()) == []  # the exported files are gone
    by_option = {v["option"]: v for v in results["variants"]}
    assert set(by_option) == {"onnxruntime-lm", "onnxruntime-lm-int8"}
    assert by_option["onnxruntime-lm"]["flip_rate"] == 0 and by_option["onnxruntime-lm"]["n_failed"] == 0
    assert by_option["onnxruntime-lm"]["mean_abs_loglik_change"] < 1e-5
    assert by_option["onnxruntime-lm-int8"]["mean_abs_loglik_change"] > 1e-5
    stages = {s["runtime"]: s for s in results["run"]["model_stages"].values()}
    detail = stages["onnxruntime-lm"]["runtime_detail"]
    assert detail["onnxruntime"] and detail["providers"] == ["CPUExecutionProvider"]
    assert detail["export"]["exporter"] == "torch.onnx.export" and detail["export"]["dynamo"] is False
    assert detail["export"]["opset"] == onnx_export.OPSET and detail["export"]["seconds"] >= 0
    assert stages["onnxruntime-lm-int8"]["runtime_detail"]["quantization"]["weight_bits"] == 8
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| model | task | metric | FP32 | onnxruntime-lm | onnxruntime-lm-int8 |" in report


def test_a_runtime_that_cannot_be_built_is_a_failed_column_with_its_reason(tmp_path, tiny_lm, monkeypatch):
    def refuse(model, path):
        raise RuntimeError("exporter says no")

    monkeypatch.setattr(onnx_export, "export_causal_lm", refuse)
    options = EngineOptions(batch_size=4, workers=0, progress=False)
    results = api.run(
        tiny_lm,
        _piqa_file(tmp_path),
        task="language",
        noises=["runtime=onnxruntime-lm"],
        out=tmp_path / "out",
        options=options,
    )
    (variant,) = results["variants"]
    assert variant["n_failed"] == results["reference"]["n"]
    reason = results["variant_failures"]["runtime/onnxruntime-lm"]
    assert "exporter says no" in reason[0]["reason"] and len(reason) == results["reference"]["n"]
    stage = next(s for s in results["run"]["model_stages"].values() if s["runtime"] == "onnxruntime-lm")
    assert "exporter says no" in stage["error"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "failed" in report and "exporter says no" in report
