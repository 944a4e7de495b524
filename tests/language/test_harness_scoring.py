"""Scoring as lm-evaluation-harness 0.4.13 defines it, against expectations written out by hand:
rolling windows of a long text (get_rolling_token_windows with context_len 1, then
make_disjoint_window), acc_norm over len(choice), trailing whitespace moved into the
continuation, the window length, and the perplexity forms of rolling tasks."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sysnoise.analysis import language as lang
from sysnoise.tasks.language import Request, TextItem, encode, harness_window, parse_hellaswag, rolling_windows, score


def test_rolling_windows_by_hand():
    tokens = list(range(10, 21))  # 11 tokens, window 4, prefix P = 99
    # window 1: P | 10 11 12 13; window 2 (full): 13 | 14 15 16 17;
    # window 3 (3 targets): max_len - n + 1 = 2 earlier tokens: 16 17 | 18 19 20
    assert rolling_windows(tokens, 99, 4) == (
        ((99,), (10, 11, 12, 13)),
        ((13,), (14, 15, 16, 17)),
        ((16, 17), (18, 19, 20)),
    )
    # a last window of one token is conditioned on a whole window of earlier tokens
    assert rolling_windows(list(range(9)), 99, 4) == (((99,), (0, 1, 2, 3)), ((3,), (4, 5, 6, 7)), ((4, 5, 6, 7), (8,)))
    assert rolling_windows([5, 6], 99, 4) == (((99,), (5, 6)),)  # shorter than the window: one


def test_a_long_text_is_encoded_in_the_harness_windows_and_scored_whole(tokenizer, make_bigram):
    """The text's own tokens in the hand-written windows; the bigram model's sum over them is the
    whole text's log-likelihood, written out by hand."""
    model = make_bigram({("a", "b"): 0.9, ("b", "a"): 0.9})
    text = TextItem("line 1", "text", (Request("", "ab" * 5),), -1)
    encoded = encode(tokenizer, text, 4)
    ids = tokenizer("ab" * 5, add_special_tokens=False)["input_ids"]
    assert [len(c) for c, _ in encoded.requests] == [1, 1, 3] and [t for _, t in encoded.requests] == [
        tuple(ids[0:4]),
        tuple(ids[4:8]),
        tuple(ids[8:10]),
    ]
    assert encoded.requests[2][0] == tuple(ids[5:8])
    out = score(model, [encoded], 4, "cpu")
    # a bigram model only sees the previous token: the sum is the whole text's, by hand
    vocab = 97
    by_hand = math.log(1 / vocab) + 9 * math.log(0.9)
    np.testing.assert_allclose(out["loglik"][0, 0], by_hand, atol=1e-4)
    assert out["tokens"][0, 0] == 10


def test_acc_norm_divides_by_the_length_of_the_ending_as_the_harness():
    """The issue's example: log-likelihoods -10 and -26 for endings of 4 and 11 characters. The
    harness picks the second (-2.5 < -2.36); dividing by len(" " + ending) would pick the first."""
    requests, label = parse_hellaswag({"ctx": "A man", "endings": ["sits", "stands tall"], "label": 1})
    chars = [r.answer_chars for r in requests]
    assert chars == [4, 11] and label == 1
    arrays = {"loglik": np.array([[-10.0, -26.0]]), "chars": np.array([chars])}
    assert lang.predictions(arrays, "choice", "acc_norm")[0] == 1
    assert np.argmax(np.array([-10.0, -26.0]) / np.array([5, 12])) == 0  # the old divisor chose the other


def test_all_trailing_whitespace_of_the_context_moves_into_the_continuation(tokenizer):
    sample = TextItem("line 1", "choice", (Request("x:\n ", "ab"), Request("x:\t", "b")), 0)
    encoded = encode(tokenizer, sample, 64)
    ids = lambda s: tuple(tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert encoded.requests[0] == (ids("x:"), ids("\n ab"))
    assert encoded.requests[1] == (ids("x:"), ids("\tb"))


def test_the_window_is_found_as_the_harness_finds_it():
    tokenizer = SimpleNamespace(model_max_length=1000000000000000019884624838656)
    assert harness_window(SimpleNamespace(max_position_embeddings=8192), tokenizer) == (
        8192,
        "config.max_position_embeddings",
    )
    assert harness_window(SimpleNamespace(n_positions=1024, max_position_embeddings=8192), tokenizer)[0] == 1024
    nested = SimpleNamespace(text_config=SimpleNamespace(max_position_embeddings=4096), max_position_embeddings=1200)
    assert harness_window(nested, tokenizer)[0] == 4096
    assert harness_window(SimpleNamespace(), SimpleNamespace(model_max_length=512)) == (
        512,
        "tokenizer.model_max_length",
    )
    assert harness_window(SimpleNamespace(), tokenizer) == (2048, "default")


def test_perplexity_forms_by_hand(tokenizer, bigram):
    _, model = bigram
    text = ": ab  ab\nab"  # 4 words by the harness's re.split(r"\s+") (":" is one), 11 bytes, 11 tokens
    out = score(model, [encode(tokenizer, TextItem("line 1", "text", (Request("", text),), -1), 64)], 2, "cpu")
    forms = lang.perplexity_forms(out, np.array([0]))
    loglik = out["loglik"][0, 0]
    assert (forms["words"], forms["bytes"], out["tokens"][0, 0]) == (4, 11, 11)
    assert forms["word_perplexity"] == pytest.approx(math.exp(-loglik / 4))
    assert forms["byte_perplexity"] == pytest.approx(math.exp(-loglik / 11))
    assert forms["bits_per_byte"] == pytest.approx(-loglik / 11 / math.log(2))
    assert forms["token_perplexity"] == pytest.approx(math.exp(-loglik / 11))


def test_a_text_run_reports_the_window_the_perplexity_forms_and_only_model_fields(tmp_path, tiny_lm):
    import json

    from sysnoise import api
    from sysnoise.engine.execute import EngineOptions

    texts = ["ab ba " * 40, "a b\nab " * 30]  # 240 and 210 characters: longer than the 128-token window
    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    results = api.run(
        tiny_lm,
        data,
        task="language",
        fmt="text",
        noises=("precision=fp16",),
        out=tmp_path / "out",
        options=EngineOptions(batch_size=2, workers=0, progress=False),
    )
    assert (
        results["scoring"]["window_tokens"] == 128
        and results["scoring"]["window_from"] == "config.max_position_embeddings"
    )
    forms = results["reference"]["perplexities"]
    out = np.load(tmp_path / "out" / "outputs.npz")
    loglik = out["c0.loglik"][:, 0].sum()
    words = sum(len(t.split()) + (1 if t.endswith(" ") else 0) for t in texts)  # the trailing "" counts
    assert forms["words"] == words and forms["bytes"] == sum(len(t.encode()) for t in texts)
    assert forms["word_perplexity"] == pytest.approx(math.exp(-loglik / words))
    assert forms["token_perplexity"] == pytest.approx(results["reference"][results["reference"]["metric"]])
    assert results["variants"][0]["perplexities"]["bits_per_byte"] > 0
    assert set(results["reference"]["pipeline"]) == {"precision", "operators", "runtime"}
    assert all(set(v["pipeline"]) == {"precision", "operators", "runtime"} for v in results["variants"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Perplexity forms" in report and "windows of 128 tokens (config.max_position_embeddings)" in report
