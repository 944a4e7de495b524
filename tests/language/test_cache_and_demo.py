"""A model named by its Hub id is read from the local Hugging Face cache and hashed like a local
folder; `sysnoise demo-lm` writes each set's results and the combined Table 5."""

import json
import shutil

import pytest
import torch

from sysnoise import cli
from sysnoise.language_models import load_causal_lm
from sysnoise.weights import sha256_file


def _save(loaded_module, tokenizer, folder):
    loaded_module.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_hub_name_in_the_local_cache_is_hashed_like_its_folder(tmp_path, tiny_lm, monkeypatch):
    from huggingface_hub import constants

    folder = _save(tiny_lm.module, tiny_lm.tokenizer, tmp_path / "model")
    # the hub cache's layout: models--ORG--NAME/refs/main names the snapshot folder holding the files
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--tiny-llama"
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read at import, so patched too
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # any HTTP request would raise

    cached = load_causal_lm("tiny-org/tiny-llama")
    assert torch.equal(cached.module.lm_head.weight, tiny_lm.module.lm_head.weight)  # the cached files were read
    assert cached.weights_sha256 == sha256_file(folder / "model.safetensors")
    assert cached.weights_sha256 == load_causal_lm(str(folder)).weights_sha256


def _table_row(report: str, task: str) -> list[str]:
    row = next(line for line in report.splitlines() if f"| {task} |" in line)
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_demo_lm_writes_each_set_and_the_table5_summary(tmp_path, make_bigram, tokenizer, monkeypatch):

    # greedy decoding after "x" gives " ab": the last word " ab" is reproduced, " ba" is not
    model = make_bigram({("x", " "): 0.9, (" ", "a"): 0.9, ("a", "b"): 0.9})
    folder = _save(model, tokenizer, tmp_path / "bigram")
    lastword = tmp_path / "lastword.jsonl"
    lastword.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("x ab", "xx ab", "xxx ab", "x ba")))
    text = tmp_path / "prose.jsonl"
    text.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("x ab x ab", "ab ba ab")))
    monkeypatch.setattr(cli, "DEMO_SETS", {"lastword": (lastword, "lambada"), "text": (text, "text")})
    out = tmp_path / "demo"
    assert cli.main(["demo-lm", "--model", str(folder), "--out", str(out), "--workers", "0", "--no-progress"]) == 0

    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| model |"))
    assert header == "| model | task | metric | FP32 | fp16 | int8-llm | int8-dynamic |"  # DEMO_NOISES' columns
    for name, task in (("lastword", "lambada: lastword"), ("text", "text: prose")):
        results = json.loads((out / name / "results.json").read_text())
        assert (out / name / "report.md").is_file() and (out / name / "outputs.npz").is_file()
        ref, places = results["reference"], 1 if name == "lastword" else 2
        cells = _table_row(report, task)
        assert cells[0] == str(folder)
        fp32 = f"{ref[ref['metric']]:.{places}f}" + (
            f" [{ref[ref['metric'] + '_ci'][0]:.1f}, {ref[ref['metric'] + '_ci'][1]:.1f}]"
            if ref[ref["metric"] + "_ci"]
            else ""
        )
        assert cells[3] == fp32
        by_option = {v["option"]: v for v in results["variants"]}
        for option, cell in zip(("fp16", "int8-llm", "int8-dynamic"), cells[4:]):
            v = by_option[option]
            star = "*" if v["distinguishable_from_zero"] else ""
            low, high = v["delta_ci"]
            assert cell == f"{v['delta']:.{places}f}{star} [{low:.{places}f}, {high:.{places}f}]"
        assert f"- {results['dataset']['format']}: {results['dataset']['path']}, {ref['n']} items" in report
    # hand-computed: 3 of 4 last words reproduced; 95% Wilson interval of 3/4
    assert _table_row(report, "lambada: lastword")[3] == "75.0 [30.1, 95.4]"
    assert json.loads((out / "lastword" / "results.json").read_text())["reference"]["acc"] == pytest.approx(75.0)
