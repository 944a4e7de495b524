"""A tiny causal LM whose next-token distribution is a known bigram table, and a character
tokenizer: log-likelihoods can then be written down by hand.

The Llama has one layer whose attention and MLP outputs are zeroed, so the hidden state at a
position is the embedding of its token; embeddings are scaled one-hot rows, which the final
RMSNorm maps to sqrt(hidden) * one-hot; the head's column for token i is log P(. | i) / sqrt(hidden).
The logits after token i are then log P(. | i), whose log-softmax is itself.
"""

import math
import string

import numpy as np
import pytest
import torch

CHARS = ["<eos>"] + list(string.printable[:95]) + ["\n"]  # printable ASCII and newline, one token each
HIDDEN = 128


def char_tokenizer():
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def bigram_model(log_probs: np.ndarray):
    """A LlamaForCausalLM whose logits after token i are log_probs[i] (rows: log-distributions)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = log_probs.shape[0]
    assert vocab <= HIDDEN
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        rms_norm_eps=1e-12,
        bos_token_id=None,
        eos_token_id=0,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        layer = model.model.layers[0]
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, :vocab] = 10 * torch.eye(vocab)  # rms 10/sqrt(HIDDEN) per row
        model.lm_head.weight.copy_(torch.zeros(vocab, HIDDEN))
        model.lm_head.weight[:, :vocab] = torch.from_numpy(log_probs.T.astype(np.float32)) / math.sqrt(HIDDEN)
    return model


def uniform_with(overrides: dict[tuple[str, str], float]) -> np.ndarray:
    """log P(next | current): the given probabilities, the rest of each row shared uniformly."""
    vocab = len(CHARS)
    index = {c: i for i, c in enumerate(CHARS)}
    probs = np.zeros((vocab, vocab))
    for row in range(vocab):
        fixed = {index[b]: p for (a, b), p in overrides.items() if index[a] == row}
        rest = (1 - sum(fixed.values())) / (vocab - len(fixed))
        probs[row] = rest
        for col, p in fixed.items():
            probs[row, col] = p
    return np.log(probs)


@pytest.fixture(scope="session")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="session")
def bigram():
    """Bigram table of the hand-made PIQA example in test_scoring.py."""
    table = uniform_with({(":", " "): 0.5, (" ", "a"): 0.5, ("a", "b"): 0.5, (" ", "b"): 0.2})
    return table, bigram_model(table)


@pytest.fixture(scope="session")
def make_bigram():
    """Build another bigram model: make_bigram({(current, next): probability, ...})."""
    return lambda overrides: bigram_model(uniform_with(overrides))


@pytest.fixture(scope="session")
def tiny_lm(tokenizer):
    """A randomly initialised two-layer Llama with the character tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from sysnoise.loaded_model import LoadedModel
    from sysnoise.pipeline.spec import Pipeline

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    module = LlamaForCausalLM(config).eval()
    return LoadedModel("tiny-llama", module, Pipeline(), 97, tokenizer=tokenizer)
