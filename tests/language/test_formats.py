"""Each public data set's JSONL format parses into the harness's prompts; bad lines name the line."""

import json

import pytest

from sysnoise.errors import UserInputError
from sysnoise.tasks.language import Request, read_jsonl


def _write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_piqa(tmp_path):
    data = read_jsonl(
        _write(tmp_path, [{"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat the lid", "label": 0}])
    )
    assert data.format == "piqa" and data.metric == "acc"
    s = data.samples[0]
    assert s.requests == (
        Request("Question: Open a jar\nAnswer:", " twist the lid", " "),
        Request("Question: Open a jar\nAnswer:", " eat the lid", " "),
    )
    assert [r.answer_chars for r in s.requests] == [
        len("twist the lid"),
        len("eat the lid"),
    ]  # the harness's len(choice)
    assert s.label == 0 and s.id == "line 1"


def test_hellaswag_with_the_harness_clean_up(tmp_path):
    row = {
        "activity_label": "Baking",
        "ctx_a": "She mixes flour.",
        "ctx_b": "then she",
        "label": "2",
        "endings": ["bakes [title] it.", "sings.", "runs  away.", "sleeps."],
        "ctx": "ignored when a/b exist",
    }
    s = read_jsonl(_write(tmp_path, [row])).samples[0]
    assert s.requests[0].context == "Baking: She mixes flour. Then she"
    assert [r.continuation for r in s.requests] == [" bakes. it.", " sings.", " runs away.", " sleeps."]
    assert s.label == 2  # a string label, as the published files have it
    plain = read_jsonl(_write(tmp_path, [{"ctx": "A man sits.", "endings": ["x", "y"], "label": 1}], "b.jsonl"))
    assert plain.samples[0].requests[1] == Request("A man sits.", " y", " ") and plain.metric == "acc_norm"
    # the harness prefixes activity_label + ": " whenever the field is there, even empty
    empty = read_jsonl(_write(tmp_path, [{**row, "activity_label": ""}], "c.jsonl")).samples[0]
    assert empty.requests[0].context == ": She mixes flour. Then she"


def test_winogrande_partial_scoring(tmp_path):
    row = {
        "sentence": "The cup fell off the table because _ was wobbly.",
        "option1": "the cup",
        "option2": "the table",
        "answer": "2",
    }
    s = read_jsonl(_write(tmp_path, [row])).samples[0]
    assert s.requests == (
        Request("The cup fell off the table because the cup", " was wobbly.", " "),
        Request("The cup fell off the table because the table", " was wobbly.", " "),
    )
    assert s.label == 1


def test_lambada_and_text_need_the_format_named(tmp_path):
    path = _write(tmp_path, [{"text": "he opened the door"}, "", {"text": "and then"}])
    with pytest.raises(UserInputError, match=r":1: records with only 'text' .* --format lambada"):
        read_jsonl(path)
    data = read_jsonl(path, "lambada")
    assert [s.requests[0] for s in data.samples] == [
        Request("he opened the", " door", " "),
        Request("and", " then", " "),
    ]
    assert [s.id for s in data.samples] == ["line 1", "line 3"]  # blank lines are skipped, ids are line numbers
    text = read_jsonl(path, "text")
    assert text.samples[0].requests == (Request("", "he opened the door"),) and text.metric == "perplexity"
    assert text.label_matrix().tolist() == [[-1], [-1]]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"goal": "g", "sol1": "a", "sol2": "b", "label": 0', "not valid JSON"),
        ('{"goal": "g", "sol1": "a", "label": 0}', "not a piqa record: missing field 'sol2'"),
        ('{"goal": "g", "sol1": "a", "sol2": "b", "label": 2}', "not a piqa record: label 2 outside 0..1"),
        ('{"goal": "g", "sol1": "a", "sol2": 3, "label": 0}', "not a piqa record: field 'sol2' should be str"),
        ('["a", "b"]', "expected a JSON object"),
    ],
)
def test_a_malformed_line_is_an_error_naming_file_and_line(tmp_path, line, message):
    path = _write(tmp_path, [{"goal": "g", "sol1": "a", "sol2": "b", "label": 1}, line])
    with pytest.raises(UserInputError) as err:
        read_jsonl(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value)


def test_unknown_keys_name_the_file_line_and_every_format_with_its_keys(tmp_path):
    path = _write(tmp_path, [{"question": "q", "answer": "a"}])
    with pytest.raises(UserInputError) as err:
        read_jsonl(path)
    message = str(err.value)
    assert message.startswith(f"{path}:1: cannot tell the format from the keys ['answer', 'question']")
    for known in (
        "piqa {goal, sol1, sol2, label}",
        "hellaswag {ctx (or ctx_a + ctx_b), endings, label}",
        "winogrande {sentence, option1, option2, answer}",
        "lambada {text}",
        "text {text}",
    ):
        assert known in message


def test_winogrande_sentence_needs_one_blank(tmp_path):
    path = _write(tmp_path, [{"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}])
    with pytest.raises(UserInputError, match=r":1: not a winogrande record: .*exactly one '_'"):
        read_jsonl(path)


def test_the_embedded_sets_parse():
    from sysnoise.zoo.text import DEMO_SETS

    for path, fmt in DEMO_SETS.values():
        data = read_jsonl(path, fmt)
        assert len(data.samples) >= 25
        assert all(r.continuation.strip() for s in data.samples for r in s.requests)
