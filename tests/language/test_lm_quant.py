"""The LM precision options against hand-computed quantisation."""

import pytest
import torch

from sysnoise.inference import lm_quant


def test_symmetric_int8_per_row_by_hand():
    w = torch.tensor([[1.0, -0.5, 0.25], [0.1, 0.2, -0.4]])
    out = lm_quant.fake_quantize(w, 8, None)
    # row 0: scale 1/127; -0.5*127 = -63.5 rounds half to even (-64), 0.25*127 = 31.75 -> 32
    torch.testing.assert_close(out[0], torch.tensor([127.0, -64.0, 32.0]) / 127)
    # row 1: scale 0.4/127
    torch.testing.assert_close(out[1], torch.round(torch.tensor([0.1, 0.2, -0.4]) / (0.4 / 127)) * (0.4 / 127))


def test_asymmetric_int4_groups_by_hand():
    # one group of 4: low -1, high 2, scale 3/15 = 0.2, zero round(1/0.2) = 5
    # q = round(w/0.2) + 5 = [0, 5, 7 (2.5 rounds to 2), 15] -> (q - 5) * 0.2
    w = torch.tensor([[-1.0, 0.0, 0.5, 2.0]])
    torch.testing.assert_close(lm_quant.fake_quantize(w, 4, 4), torch.tensor([[-1.0, 0.0, 0.4, 2.0]]))
    # a last, shorter group (5 inputs, groups of 4) is quantised on its own values
    w = torch.tensor([[-1.0, 0.0, 0.5, 2.0, 0.3]])
    out = lm_quant.fake_quantize(w, 4, 4)
    assert out.shape == (1, 5) and out[0, 4] == pytest.approx(0.3)


def test_int8_llm_linear_by_hand():
    torch.manual_seed(0)
    linear = torch.nn.Linear(8, 3)
    x = torch.randn(2, 4, 8)
    x[0, 1, 5] = 20.0  # feature 5 holds an outlier (> 6) somewhere in the batch: float path for all rows
    y = lm_quant._int8_llm_linear(linear, 6.0)(x)
    w, b = linear.weight.detach(), linear.bias.detach()
    regular = x.clone()
    regular[..., 5] = 0
    sx = regular.abs().amax(-1, keepdim=True) / 127
    sw = w.abs().amax(1) / 127
    by_hand = (torch.round(regular / sx) @ torch.round(w / sw[:, None]).T) * sx * sw + x[..., 5:6] @ w[:, 5:6].T + b
    torch.testing.assert_close(y, by_hand, rtol=1e-6, atol=1e-6)
    assert not torch.equal(y, linear(x))


def test_lm_options_change_only_what_they_say(tiny_lm):
    model = tiny_lm.module
    for option in ("w8-weight-only", "w4-g128-weight-only"):
        changed = getattr(lm_quant, option.replace("-", "_"))(model)
        assert torch.equal(changed.lm_head.weight, model.lm_head.weight)  # the head stays float
        assert torch.equal(changed.model.embed_tokens.weight, model.model.embed_tokens.weight)
        assert not torch.equal(changed.model.layers[0].mlp.up_proj.weight, model.model.layers[0].mlp.up_proj.weight)
    int8 = lm_quant.int8_llm(model)
    assert isinstance(int8.lm_head, torch.nn.Linear) and not isinstance(
        int8.model.layers[0].mlp.up_proj, torch.nn.Linear
    )
    attention = lm_quant.attention_fp16(model)
    assert attention.config._attn_implementation == "sdpa-float16"
    assert model.config._attn_implementation == "sdpa"  # the original is untouched
