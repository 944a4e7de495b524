"""A language run end to end on the tiny model: the engine, every LM precision option, the
analysis and the Table 5 report."""

import json

import numpy as np
import pytest

from sysnoise import api
from sysnoise.engine.execute import EngineOptions
from sysnoise.models import LoadedModel
from sysnoise.pipeline.spec import Pipeline


@pytest.fixture(scope="module")
def tiny_lm(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    module = LlamaForCausalLM(config).eval()
    return LoadedModel("tiny-llama", module, Pipeline(), 97, tokenizer=tokenizer)


def test_language_run_writes_table5_results(tmp_path, tiny_lm):
    rows = [{"goal": f"goal {i}", "sol1": "ab" * (i % 3 + 1), "sol2": "ba", "label": i % 2} for i in range(12)]
    data = tmp_path / "piqa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    options = EngineOptions(batch_size=4, workers=0, chunk_size=5, progress=False)
    results = api.run_language(tiny_lm, data, out=tmp_path / "out", options=options)

    ref = results["reference"]
    assert results["task"] == "language" and ref["metric"] == "acc" and ref["n"] == 12
    by_option = {v["option"]: v for v in results["variants"]}
    assert {"fp16", "bf16", "int8-dynamic", "w8-weight-only", "w4-g128-weight-only", "attention-fp16"} <= set(by_option)
    assert not any(o.startswith("int8-") and o != "int8-dynamic" for o in by_option)  # image-calibrated INT8: not for text
    for v in results["variants"]:
        # the delta is the reference's accuracy minus the variant's, the interval contains it
        assert v["delta"] == pytest.approx(ref["value"] - v["value"])
        assert v["delta_ci"][0] <= v["delta"] <= v["delta_ci"][1]
        assert v["identical"] < 100 and v["mean_abs_loglik_change"] > 0  # each option changes the numbers
    precision = next(n for n in results["noises"] if n["name"] == "precision")
    assert precision["not_applicable"] == []
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| model | task | metric | FP32 | fp16 | int8-dynamic |" in report
    assert "| tiny-llama | piqa | accuracy % |" in report

    # the stored per-item log-likelihoods recompute the reference accuracy independently
    out = np.load(tmp_path / "out" / "outputs.npz")
    chosen = np.nanargmax(out["c0.loglik"], axis=1)
    assert ref["value"] == pytest.approx(100 * np.mean(chosen == np.array([r["label"] for r in rows])))


def test_precision_options_for_lms_are_not_applicable_to_vision_models():
    import torch

    from sysnoise.models import wrap_module

    cnn = wrap_module(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10)))
    plan, rows = api.plan_variants(cnn, ["precision"], Pipeline())
    assert {"int8-dynamic", "w8-weight-only", "w4-g128-weight-only", "attention-fp16"} <= set(rows[0]["not_applicable"])
    assert "precision/fp16" in {v.id for v in plan.variants}
    _, rows = api.plan_variants(cnn, ["resize"], Pipeline(), stages=("inference",))
    assert rows[0]["applies"] is False  # text has no image pre-processing: n/a
