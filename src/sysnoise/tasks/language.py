"""Language tasks on causal LMs: multiple choice, last-word prediction and perplexity, read from
local JSONL files in the formats the public data sets use.

Every item becomes one or more requests: a context and a continuation whose log-likelihood the
model scores, as in EleutherAI's lm-evaluation-harness (0.4.13; same prompts, same tokenisation
rule: all trailing whitespace of the context moves into the continuation, the continuation's
tokens are those of context + continuation past the context's own tokens, no BOS unless the
context is empty; texts longer than the window are scored in the harness's rolling windows).
The window is the model's, found as the harness finds it (`harness_window`), unless given.
Per item the engine stores, for each request, the summed log-likelihood, the token count, the
answer's character count (acc_norm divides by it: the choice without the delimiter before it)
and whether greedy decoding reproduces it, plus the model's top-1 next token at the first scored
positions (for next-token agreement between systems), and for a text its words and UTF-8 bytes
(the harness's word and byte perplexities). Accuracy, perplexity, deltas and flips are computed
from these in analysis.language.

Formats (`--format`, detected from the first line's keys when not given):
  piqa        {"goal", "sol1", "sol2", "label": 0|1}
  hellaswag   {"ctx" (or "ctx_a" + "ctx_b"), "endings": [4], "label": 0..3, "activity_label"?}
  winogrande  {"sentence" with one "_", "option1", "option2", "answer": "1"|"2"}
  lambada     {"text"}: the last space-separated word is predicted from the rest
  text        {"text"}: perplexity of the whole text
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sysnoise import json_input
from sysnoise.analysis.language import LanguageAnalysis
from sysnoise.errors import SampleError, UserInputError
from sysnoise.language_models import load_language_model
from sysnoise.loaded_model import LoadedModel
from sysnoise.pipeline.spec import STAGES
from sysnoise.registry import Registry
from sysnoise.tasks.base import Task
from sysnoise.tasks.definition import TASKS, Prepared, TaskDefinition

MAX_CHOICES = 8  # per-item arrays have this width; PIQA/WinoGrande use 2, HellaSwag 4
AGREEMENT_TOKENS = 128  # top-1 next tokens stored per item, for next-token agreement
DEFAULT_WINDOW = 2048  # the harness's window when neither the config nor the tokenizer gives one
TOKENIZER_INFINITY = 1000000000000000019884624838656  # transformers' "no model_max_length" (int(1e30))
MAX_BATCH_TOKENS = 4096  # bounds the (batch, length, vocabulary) logits a forward holds


@dataclass(frozen=True)
class Request:
    context: str
    continuation: str
    delimiter: str = ""  # what the continuation starts with before the answer (the harness's target_delimiter)

    @property
    def answer_chars(self) -> int:
        """The length acc_norm divides by: the choice itself, as the harness's len(choice)."""
        return len(self.continuation) - len(self.delimiter)


@dataclass(frozen=True)
class TextItem:
    id: str  # "line N" of the JSONL file
    kind: str  # "choice" | "lastword" | "text"
    requests: tuple[Request, ...]
    label: int = -1  # index of the correct request (choice); 0 for lastword; -1 for text

    @property
    def labels(self) -> tuple[int, ...]:
        return (self.label,) if self.label >= 0 else ()


@dataclass(frozen=True)
class Format:
    kind: str
    metric: str  # the accuracy the harness reports for it: acc, acc_norm, or perplexity
    parse: object  # record -> (requests, label)


FORMATS: Registry = Registry("text format")


def _format(name: str, description: str, kind: str, metric: str, keys: str):
    def add(parse):
        FORMATS.register(name, description, kind=kind, metric=metric, keys=keys)(Format(kind, metric, parse))
        return parse

    return add


def _field(record: dict, key: str, kind=str):
    if key not in record:
        raise ValueError(f"missing field {key!r}")
    value = record[key]
    if kind is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # HellaSwag and WinoGrande store labels as strings
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {key!r} should be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _label(value: int, n: int) -> int:
    if not 0 <= value < n:
        raise ValueError(f"label {value} outside 0..{n - 1}")
    return value


@_format(
    "piqa", "PIQA: goal, sol1, sol2, label; acc over summed log-likelihood", "choice", "acc", "goal, sol1, sol2, label"
)
def parse_piqa(record):
    context = f"Question: {_field(record, 'goal')}\nAnswer:"
    choices = (_field(record, "sol1"), _field(record, "sol2"))
    return tuple(Request(context, " " + c, " ") for c in choices), _label(_field(record, "label", int), 2)


def _hellaswag_clean(text: str) -> str:
    # the harness's clean-up of WikiHow artefacts
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


@_format(
    "hellaswag",
    "HellaSwag: ctx, endings, label; acc_norm (log-likelihood per character)",
    "choice",
    "acc_norm",
    "ctx (or ctx_a + ctx_b), endings, label",
)
def parse_hellaswag(record):
    if "ctx_a" in record and "ctx_b" in record:
        ctx = _field(record, "ctx_a") + " " + _field(record, "ctx_b").capitalize()
    else:
        ctx = _field(record, "ctx")
    if "activity_label" in record:  # the harness: preprocess(activity_label + ": " + ctx), even when empty
        ctx = _field(record, "activity_label") + ": " + ctx
    endings = _field(record, "endings", list)
    if not endings or not all(isinstance(e, str) for e in endings):
        raise ValueError("field 'endings' should be a non-empty list of strings")
    context = _hellaswag_clean(ctx)
    requests = tuple(Request(context, " " + _hellaswag_clean(e), " ") for e in endings)
    return requests, _label(_field(record, "label", int), len(endings))


@_format(
    "winogrande",
    "WinoGrande: sentence with '_', option1, option2, answer; partial scoring",
    "choice",
    "acc",
    "sentence, option1, option2, answer",
)
def parse_winogrande(record):
    sentence = _field(record, "sentence")
    if sentence.count("_") != 1:
        raise ValueError(f"field 'sentence' should contain exactly one '_', found {sentence.count('_')}")
    before, after = sentence.split("_")
    # partial scoring: the options change the context; the shared rest of the sentence is scored
    options = (_field(record, "option1"), _field(record, "option2"))
    requests = tuple(Request(before + option, " " + after.strip(), " ") for option in options)
    return requests, _label(_field(record, "answer", int) - 1, 2)


@_format("lambada", "LAMBADA: text; acc = greedy decoding reproduces the last word", "lastword", "acc", "text")
def parse_lambada(record):
    text = _field(record, "text").strip()
    if " " not in text:
        raise ValueError("field 'text' needs a context and a last word separated by a space")
    context, word = text.rsplit(" ", 1)
    return (Request(context, " " + word, " "),), 0


@_format(
    "text", "plain text: perplexity (tokens scored in windows of the model's length)", "text", "perplexity", "text"
)
def parse_text(record):
    text = _field(record, "text")
    if not text.strip():
        raise ValueError("field 'text' is empty")
    return (Request("", text),), -1


def detect_format(record: dict, where: str) -> str:
    """The format a record's keys identify; `where` (path:line) starts the error when none does."""
    keys = set(record)
    for name, needed in (
        ("piqa", {"goal", "sol1", "sol2"}),
        ("hellaswag", {"endings"}),
        ("winogrande", {"sentence", "option1", "option2"}),
    ):
        if needed <= keys:
            return name
    if "text" in keys:
        raise UserInputError(
            f"{where}: records with only 'text' can be read as --format lambada (last word) "
            "or --format text (perplexity): say which"
        )
    known = "; ".join(f"{entry.name} {{{entry.meta['keys']}}}" for entry in FORMATS)
    raise UserInputError(
        f"{where}: cannot tell the format from the keys {sorted(keys)}; give --format, one of "
        f"(with their keys): {known}"
    )


@dataclass
class Dataset:
    root: Path  # the JSONL file
    samples: list[TextItem]
    format: str
    problems: list[dict] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return FORMATS.get(self.format).meta["kind"]

    @property
    def metric(self) -> str:
        return FORMATS.get(self.format).meta["metric"]

    def label_matrix(self) -> np.ndarray:
        return np.asarray([[s.label] for s in self.samples], np.int64).reshape(len(self.samples), 1)

    def describe(self) -> dict:
        return {
            "path": str(self.root),
            "kind": self.kind,
            "format": self.format,
            "metric": self.metric,
            "n_samples": len(self.samples),
            "n_labeled": sum(1 for s in self.samples if s.labels),
            "n_dropped_while_reading": len(self.problems),
        }


def read_jsonl(path: str | Path, fmt: str | None = None) -> Dataset:
    """Every non-blank line is one item; a line that does not parse is an error naming it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path}: cannot read: {err}") from None
    samples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        record = json_input.loads(line, str(path), number)
        if not isinstance(record, dict):
            raise UserInputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        fmt = fmt or detect_format(record, where)
        entry = FORMATS.get(fmt).fn
        try:
            requests, label = entry.parse(record)
        except ValueError as err:
            raise UserInputError(f"{where}: not a {fmt} record: {err}") from None
        if len(requests) > MAX_CHOICES:
            raise UserInputError(f"{where}: {len(requests)} choices; at most {MAX_CHOICES} are supported")
        samples.append(TextItem(f"line {number}", entry.kind, requests, label))
    if not samples:
        raise UserInputError(f"{path}: no records")
    return Dataset(path, samples, fmt)


@dataclass(frozen=True)
class Encoded:
    """A sample as token ids: per request (context ids, continuation ids), plus how to reduce."""

    requests: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    chars: tuple[int, ...]  # characters of each answer (acc_norm divides by these; a text's own length)
    summed: bool  # perplexity windows: the item's numbers are the sums over its requests
    words: int = 0  # a text's words, as the harness counts them (len(re.split(r"\s+", text)))
    utf8_bytes: int = 0  # a text's UTF-8 bytes


def harness_window(config, tokenizer) -> tuple[int, str]:
    """The window lm-evaluation-harness gives a model (`resolve_max_length`): the first of the text
    config's n_positions, max_position_embeddings, n_ctx, else the tokenizer's model_max_length,
    else 2048; with where it came from."""
    config = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value is not None:
            return int(value), f"config.{attr}"
    length = getattr(tokenizer, "model_max_length", None)
    if length is not None and length != TOKENIZER_INFINITY:
        return int(length), "tokenizer.model_max_length"
    return DEFAULT_WINDOW, "default"


def rolling_windows(tokens: list[int], prefix: int, max_length: int) -> tuple:
    """A long text's windows as the harness scores them (get_rolling_token_windows with
    context_len 1, then make_disjoint_window): disjoint targets of at most `max_length` tokens,
    each conditioned on as many earlier tokens as fill the window: the prefix token for the
    first, the one token before it for a full window, max_length - n + 1 tokens for a last
    window of n targets. Returns ((context ids, target ids), ...)."""
    windows = []
    for start in range(0, len(tokens), max_length):
        target = tokens[start : start + max_length]
        context = [prefix] if start == 0 else tokens[start - (max_length + 1 - len(target)) : start]
        windows.append((tuple(context), tuple(target)))
    return tuple(windows)


def encode(tokenizer, sample: TextItem, max_length: int) -> Encoded:
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    if sample.kind == "text":
        text = sample.requests[0].continuation
        return Encoded(
            rolling_windows(ids(text), prefix, max_length),
            (len(text),),
            summed=True,
            words=len(re.split(r"\s+", text)),
            utf8_bytes=len(text.encode("utf-8")),
        )
    out = []
    for request in sample.requests:
        context, continuation = request.context, request.continuation
        if context:
            trailing = len(context) - len(context.rstrip())
            if trailing:  # the context's trailing whitespace belongs to the continuation's first token
                context, continuation = context[:-trailing], context[-trailing:] + continuation
            context_ids = ids(context)
            target = ids(context + continuation)[len(context_ids) :]
            context_ids = context_ids or [prefix]  # a context of whitespace only
        else:  # the harness: the prefix token as context, or the continuation's first token if it is the prefix
            target = ids(continuation)
            context_ids, target = (target[:1], target[1:]) if target[:1] == [prefix] else ([prefix], target)
        keep = max(1, max_length + 1 - len(target))
        out.append((tuple(context_ids[-keep:]), tuple(target[-max_length:])))
    return Encoded(tuple(out), tuple(r.answer_chars for r in sample.requests), summed=False)


def _logits(output):
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, dict):
        return output["logits"]
    return output[0] if isinstance(output, (tuple, list)) else output


def _batches(lengths: list[int], batch_size: int):
    """Indices grouped longest first, at most batch_size sequences and MAX_BATCH_TOKENS tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or (len(batch) + 1) * lengths[batch[0]] > MAX_BATCH_TOKENS):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def failed_outputs(n: int) -> dict[str, np.ndarray]:
    return {
        "loglik": np.full((n, MAX_CHOICES), np.nan, np.float64),
        "tokens": np.zeros((n, MAX_CHOICES), np.int32),
        "chars": np.zeros((n, MAX_CHOICES), np.int32),
        "greedy": np.zeros((n, MAX_CHOICES), bool),
        "argmax": np.full((n, AGREEMENT_TOKENS), -1, np.int32),
        "words": np.zeros(n, np.int64),  # a text's words and UTF-8 bytes (0 for other items)
        "bytes": np.zeros(n, np.int64),
    }


def score(model, encoded: list[Encoded], batch_size: int, device: str, pad_id: int = 0) -> dict[str, np.ndarray]:
    """Forward every request once; per item, the arrays of failed_outputs filled in."""
    import torch

    flat = [(ctx + tgt, len(tgt)) for e in encoded for ctx, tgt in e.requests]  # in item order
    lengths = [len(ids) - 1 for ids, _ in flat]  # the last token is only predicted
    loglik = np.zeros(len(flat))
    greedy = np.zeros(len(flat), bool)
    argmax: list[np.ndarray] = [np.empty(0, np.int32)] * len(flat)
    for batch in _batches(lengths, batch_size):
        width = lengths[batch[0]]
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, : lengths[i]] = torch.tensor(flat[i][0][:-1])
            mask[row, : lengths[i]] = 1
        logits = _logits(model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False))
        for row, i in enumerate(batch):
            n, stop = flat[i][1], lengths[i]
            # logits at position j predict token j + 1: the last n positions score the continuation
            scores = torch.log_softmax(logits[row, stop - n : stop].float().cpu(), dim=-1)
            target = torch.tensor(flat[i][0][-n:])
            loglik[i] = scores.gather(1, target[:, None]).sum().item()
            top = scores.argmax(-1)
            greedy[i] = bool((top == target).all())
            argmax[i] = top.numpy().astype(np.int32)

    out = failed_outputs(len(encoded))
    start = 0
    for item, e in enumerate(encoded):
        rows = range(start, start + len(e.requests))
        start = rows.stop
        if e.summed:  # perplexity windows: one number per item
            out["loglik"][item, 0] = loglik[rows].sum()
            out["tokens"][item, 0] = sum(flat[i][1] for i in rows)
            out["greedy"][item, 0] = greedy[rows].all()
        else:
            out["loglik"][item, : len(rows)] = loglik[rows]
            out["tokens"][item, : len(rows)] = [flat[i][1] for i in rows]
            out["greedy"][item, : len(rows)] = greedy[rows]
        out["chars"][item, : len(e.chars)] = e.chars
        out["words"][item], out["bytes"][item] = e.words, e.utf8_bytes
        tops = np.concatenate([argmax[i] for i in rows])[:AGREEMENT_TOKENS]
        out["argmax"][item, : len(tops)] = tops
    return out


class LanguageTask(Task):
    """Unbound in the TASKS registry; `bind(loaded_model)` gives one that knows the tokenizer."""

    name = "language"

    def __init__(self, tokenizer=None, max_length: int | None = None, window_from: str = "given"):
        """max_length: the window in tokens (None: the model's, as the harness finds it, at bind)."""
        self.tokenizer, self.max_length, self.window_from = tokenizer, max_length, window_from

    def bind(self, loaded) -> "LanguageTask":
        if loaded.tokenizer is None:
            raise UserInputError(f"model {loaded.name!r} has no tokenizer: the language task needs a causal LM")
        if self.max_length:
            return LanguageTask(loaded.tokenizer, self.max_length, self.window_from)
        return LanguageTask(loaded.tokenizer, *harness_window(loaded.module.config, loaded.tokenizer))

    def describe(self) -> dict:
        """How requests are scored, for results.json: the window and where its length came from."""
        return {
            "window_tokens": self.max_length,
            "window_from": self.window_from,
            "rolling_windows": "lm-evaluation-harness 0.4.13 (get_rolling_token_windows, context_len 1, "
            "make_disjoint_window)",
        }

    def load_input(self, sample, pipelines):
        # text has no pre-processing stages: every pipeline gets the same tokens
        try:
            if self.tokenizer is None:
                raise SampleError("language task used without a tokenizer (LanguageTask.bind)")
            value = encode(self.tokenizer, sample, self.max_length)
            if not all(tgt for _, tgt in value.requests):
                raise SampleError("a continuation has no tokens")
        except SampleError as err:
            value = err
        return {p.prefix("normalise"): value for p in pipelines}

    def content_key(self, model_input) -> bytes:
        fields = (
            model_input.requests,
            model_input.summed,
            model_input.chars,
            model_input.words,
            model_input.utf8_bytes,
        )
        return hashlib.blake2b(repr(fields).encode(), digest_size=16).digest()

    def forward(self, model, inputs, batch_size, device):
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return score(model, inputs, batch_size, device, pad)

    def failed_outputs(self, n):
        return failed_outputs(n)


LM_LIBRARIES = ("transformers", "tokenizers", "huggingface_hub", "accelerate", "gguf")
MODEL_FIELDS = dict(STAGES)["model"]  # a language run's pipelines: the model stage only


class Language(TaskDefinition):
    name = "language"
    stages = ("inference",)  # text has no image pre-processing stage
    settings = ("fmt",)
    images = False

    def read(self, data, *, allow_outside_root: bool = False, fmt: str | None = None) -> Dataset:
        return data if isinstance(data, Dataset) else read_jsonl(data, fmt)

    def load(self, model, weights=None, reference=None) -> LoadedModel:
        if weights is not None or reference is not None:
            raise UserInputError(
                "--weights and --reference are for vision models: a language model is a folder, "
                "a cache name or a zoo name"
            )
        return model if isinstance(model, LoadedModel) else load_language_model(model)

    def prepare(self, loaded, dataset) -> Prepared:
        return Prepared(LanguageTask().bind(loaded), LanguageAnalysis(dataset.kind, dataset.metric))

    def fingerprint(self, dataset) -> list:
        return [(dataset.format, s.id, s.requests, s.label) for s in dataset.samples]

    def view(self, pipeline) -> dict:
        return {k: v for k, v in pipeline.to_dict().items() if k in MODEL_FIELDS}

    def describe(self, prepared: Prepared) -> dict:
        return {"scoring": prepared.task.describe()}

    def libraries(self) -> tuple[str, ...]:
        return LM_LIBRARIES


TASKS.register("language", "causal LMs: multiple choice, last word, perplexity (JSONL)")(Language())
