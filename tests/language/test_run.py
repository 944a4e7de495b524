"""A language run end to end on the tiny model: the engine, every LM precision option, the
analysis and the Table 5 report."""

import json

import numpy as np
import pytest

from sysnoise import api, measure
from sysnoise.engine.execute import EngineOptions
from sysnoise.pipeline.spec import Pipeline


def test_language_run_writes_table5_results(tmp_path, tiny_lm):
    rows = [{"goal": f"goal {i}", "sol1": "ab" * (i % 3 + 1), "sol2": "ba", "label": i % 2} for i in range(12)]
    data = tmp_path / "piqa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    options = EngineOptions(batch_size=4, workers=0, chunk_size=5, progress=False)
    results = api.run(tiny_lm, data, task="language", out=tmp_path / "out", options=options)

    ref = results["reference"]
    assert results["task"] == "language" and ref["metric"] == "acc" and ref["n"] == 12
    by_option = {v["option"]: v for v in results["variants"]}
    assert {
        "fp16",
        "bf16",
        "int8-dynamic",
        "int8-llm",
        "w8-weight-only",
        "w4-g128-weight-only",
        "attention-fp16",
    } <= set(by_option)
    assert not any(
        o.startswith("int8-") and o not in ("int8-dynamic", "int8-llm") for o in by_option
    )  # image-calibrated INT8: not for text
    for v in results["variants"]:
        # the delta is the reference's accuracy minus the variant's, the interval contains it
        assert v["delta"] == pytest.approx(ref[ref["metric"]] - v[ref["metric"]])
        assert v["delta_ci"][0] <= v["delta"] <= v["delta_ci"][1]
        assert v["identical"] < 100 and v["mean_abs_loglik_change"] > 0  # each option changes the numbers
    precision = next(n for n in results["noises"] if n["name"] == "precision")
    assert precision["not_applicable"] == []
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| model | task | metric | FP32 | fp16 | int8-llm | int8-dynamic | bf16 |" in report
    # the FP32 cell: the accuracy and its Wilson interval, which contains it
    row = next(line for line in report.splitlines() if line.startswith("| tiny-llama | piqa: piqa | accuracy % |"))
    low, high = ref[ref["metric"] + "_ci"]
    assert (
        row.split(" | ")[3] == f"{ref[ref['metric']]:.1f} [{low:.1f}, {high:.1f}]" and low <= ref[ref["metric"]] <= high
    )

    # the stored per-item log-likelihoods recompute the reference accuracy independently
    out = np.load(tmp_path / "out" / "outputs.npz")
    chosen = np.nanargmax(out["c0.loglik"], axis=1)
    assert ref[ref["metric"]] == pytest.approx(100 * np.mean(chosen == np.array([r["label"] for r in rows])))


def test_precision_options_for_lms_are_not_applicable_to_vision_models():
    import torch

    from sysnoise.models import wrap_module

    cnn = wrap_module(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10)))
    plan, rows = measure.plan_variants(cnn, ["precision"], Pipeline())
    assert {"int8-dynamic", "w8-weight-only", "w4-g128-weight-only", "attention-fp16"} <= set(rows[0]["not_applicable"])
    assert "precision/fp16" in {v.id for v in plan.variants}
    _, rows = measure.plan_variants(cnn, ["resize"], Pipeline(), stages=("inference",))
    assert rows[0]["applies"] is False  # text has no image pre-processing: n/a


def test_precision_wrappers_keep_the_transformers_interface(tiny_lm):
    """Native casting takes keyword inputs and gives back a ModelOutput in float32; emulation and
    the LM options keep .logits too, and stay near float32's logits (4-bit weights move them most)."""
    import torch

    from sysnoise.inference.precision import PRECISIONS

    ids = torch.randint(0, 97, (2, 12))
    kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "use_cache": False}
    with torch.inference_mode():
        fp32 = tiny_lm.module(**kwargs).logits
        for option in ("bf16-native", "fp16", "int8-dynamic", "w4-g128-weight-only", "attention-bf16"):
            logits = PRECISIONS(option)(tiny_lm.module)(**kwargs).logits
            assert logits.dtype == torch.float32 and logits.shape == fp32.shape
            assert not torch.equal(logits, fp32), option
            # a random tiny model has nearly flat logits: compare values, not argmaxes
            assert (logits - fp32).abs().max() < 0.25 * fp32.abs().max(), option


def test_cli_runs_a_local_model_folder(tmp_path, tiny_lm, capsys):
    from sysnoise import cli
    from sysnoise.weights import sha256_file

    folder = tmp_path / "model"
    tiny_lm.module.save_pretrained(folder)
    tiny_lm.tokenizer.save_pretrained(folder)
    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps({"text": f"ab{i} ba ab"}) + "\n" for i in range(4)))
    out = tmp_path / "out"
    argv = [
        "run",
        "--task",
        "language",
        "--model",
        str(folder),
        "--data",
        str(data),
        "--format",
        "text",
        "--out",
        str(out),
        "--noise",
        "precision=fp16",
        "--workers",
        "0",
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["reference"]["metric"] == "perplexity" and [v["id"] for v in results["variants"]] == [
        "precision/fp16"
    ]
    assert results["model"]["weights_sha256"] == sha256_file(folder / "model.safetensors")
    missing = argv.copy()
    missing[4] = str(tmp_path / "nowhere")
    assert cli.main(missing) == 2
    assert "cannot load a causal language model from local files" in capsys.readouterr().err


def test_hellaswag_and_winogrande_runs_store_outputs_that_recompute_the_accuracy(tmp_path, tiny_lm):
    endings = ["ab", "b a b", "ba", "aab ba"]
    hellaswag = [
        {"ctx": f"ctx {i}", "endings": endings[i % 2 :] + endings[: i % 2], "label": str(i % 4)} for i in range(8)
    ]
    winogrande = [
        {"sentence": f"{i} _ went home.", "option1": "a" * (i % 3 + 1), "option2": "ba", "answer": str(i % 2 + 1)}
        for i in range(8)
    ]
    options = EngineOptions(batch_size=4, workers=0, progress=False)
    for name, rows in (("hellaswag", hellaswag), ("winogrande", winogrande)):
        data = tmp_path / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        results = api.run(
            tiny_lm, data, task="language", noises=("precision=fp16",), out=tmp_path / name, options=options
        )
        assert results["dataset"]["format"] == name
        out = np.load(tmp_path / name / "outputs.npz")
        if name == "hellaswag":  # acc_norm: log-likelihood per character of the ending (the harness's len(choice))
            chars = np.array([[len(e) for e in r["endings"]] for r in rows])
            assert (out["c0.chars"][:, :4] == chars).all()
            labels = np.array([int(r["label"]) for r in rows])
            scores = [out[f"{c}.loglik"][:, :4] / chars for c in ("c0", "c1")]
        else:
            labels = np.array([int(r["answer"]) - 1 for r in rows])
            scores = [out[f"{c}.loglik"][:, :2] for c in ("c0", "c1")]
        reference, fp16 = (100 * np.mean(np.argmax(s, axis=1) == labels) for s in scores)
        assert results["reference"][results["reference"]["metric"]] == pytest.approx(reference)
        assert results["variants"][0]["option"] == "fp16" and results["variants"][0][
            results["reference"]["metric"]
        ] == pytest.approx(fp16)
