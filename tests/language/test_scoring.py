"""Scoring against hand-computed log-likelihoods on the bigram model of conftest.py."""

import math

import numpy as np
import pytest

from sysnoise.analysis import language as lang
from sysnoise.tasks.language import LanguageTask, Request, TextItem, encode, parse_piqa, score


def _piqa(goal, sol1, sol2, label=0):
    requests, label = parse_piqa({"goal": goal, "sol1": sol1, "sol2": sol2, "label": label})
    return TextItem("line 1", "choice", requests, label)


def test_multiple_choice_gives_the_hand_computed_choice(tokenizer, bigram):
    _, model = bigram
    sample = _piqa("q", "ab", "b")
    out = score(model, [encode(tokenizer, sample, 64)], batch_size=4, device="cpu")
    # By hand: every continuation starts after ':' and the table gives
    #   " ab": P(' '|':') P(a|' ') P(b|a) = 0.5 * 0.5 * 0.5    -> log 0.125
    #   " b" : P(' '|':') P(b|' ')        = 0.5 * 0.2          -> log 0.1
    np.testing.assert_allclose(out["loglik"][0, :2], [math.log(0.125), math.log(0.1)], atol=1e-5)
    assert np.isnan(out["loglik"][0, 2:]).all()
    # acc_norm divides by the choice's characters, without the space before it (the harness's len(choice))
    assert list(out["tokens"][0, :2]) == [3, 2] and list(out["chars"][0, :2]) == [2, 1]
    assert lang.predictions(out, "choice", "acc")[0] == 0
    # per character too: log(0.125) / 2 = -1.04 > log(0.1) / 1 = -2.30
    assert lang.predictions(out, "choice", "acc_norm")[0] == 0


def test_length_normalisation_can_change_the_choice(tokenizer, make_bigram):
    # " aaaa" has the higher probability per character, " b" the higher total
    model = make_bigram({(":", " "): 0.5, (" ", "a"): 0.3, ("a", "a"): 0.9, (" ", "b"): 0.4})
    out = score(model, [encode(tokenizer, _piqa("q", "aaaa", "b"), 64)], 4, "cpu")
    by_hand = [math.log(0.5 * 0.3 * 0.9**3), math.log(0.5 * 0.4)]
    np.testing.assert_allclose(out["loglik"][0, :2], by_hand, atol=1e-5)
    assert by_hand[1] > by_hand[0] and by_hand[0] / 4 > by_hand[1] / 1  # the hand-made premise
    assert lang.predictions(out, "choice", "acc")[0] == 1
    assert lang.predictions(out, "choice", "acc_norm")[0] == 0


def test_last_word_greedy_hit_and_perplexity_by_hand(tokenizer, bigram):
    _, model = bigram
    # after ' ' the most likely token is 'a' (0.5), after 'a' it is 'b' (0.5): " ab" is greedy
    hit = TextItem("line 1", "lastword", (Request("x:", " ab"),), 0)
    miss = TextItem("line 2", "lastword", (Request("x:", " ba"),), 0)
    text = TextItem("line 3", "text", (Request("", ": ab"),), -1)
    out = score(model, [encode(tokenizer, s, 64) for s in (hit, miss, text)], 2, "cpu")
    assert list(out["greedy"][:2, 0]) == [True, False]
    vocab = 97
    rest = (1 - 0) / vocab  # after <eos> every token is equally likely
    by_hand = math.log(rest) + math.log(0.5) + math.log(0.5) + math.log(0.5)  # ':' ' ' 'a' 'b'
    assert out["tokens"][2, 0] == 4
    np.testing.assert_allclose(out["loglik"][2, 0], by_hand, atol=1e-5)
    assert lang.perplexity(out, np.array([2])) == pytest.approx(math.exp(-by_hand / 4), rel=1e-5)


def test_long_text_is_scored_in_windows_that_cover_every_token(tokenizer, bigram):
    _, model = bigram
    text = TextItem("line 1", "text", (Request("", "ab" * 20),), -1)
    whole = score(model, [encode(tokenizer, text, 64)], 4, "cpu")
    windows = encode(tokenizer, text, 16)
    assert len(windows.requests) == 3 and sum(len(t) for _, t in windows.requests) == 40
    split = score(model, [windows], 4, "cpu")
    # a bigram model needs one token of context, which each window keeps: the sums agree
    np.testing.assert_allclose(split["loglik"][0, 0], whole["loglik"][0, 0], atol=1e-4)
    assert split["tokens"][0, 0] == 40


def test_trailing_space_of_the_context_moves_to_the_continuation(tokenizer):
    sample = TextItem("line 1", "choice", (Request("x: ", "ab"), Request("x:", " b")), 0)
    encoded = encode(tokenizer, sample, 64)
    ids = tokenizer(" ab", add_special_tokens=False)["input_ids"]
    assert encoded.requests[0][1] == tuple(ids)


def test_task_needs_a_bound_tokenizer():
    from sysnoise.pipeline.spec import Pipeline

    out = LanguageTask().load_input(_piqa("q", "a", "b"), [Pipeline()])
    assert "tokenizer" in str(next(iter(out.values())))
