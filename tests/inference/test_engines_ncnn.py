"""ncnn through pnnx as runtime options: float32 with every FP16 switch off, FP16 storage, and ncnn's
FP16 defaults; a model pnnx cannot convert is a build failure with pnnx's reason."""

import copy

import pytest
import torch

from sysnoise import extras
from sysnoise.inference.build import BuildFailure, build_model, build_models
from sysnoise.pipeline.spec import Pipeline

pytest.importorskip("ncnn", reason=extras.install_line("ncnn"))
pytest.importorskip("pnnx", reason=extras.install_line("ncnn"))


def test_ncnn_fp32_gives_the_torch_logits(engine_cnn, engine_batches):
    _, x = engine_batches
    info = {}
    model = build_model(engine_cnn, Pipeline(runtime="ncnn", input_size=32), info=info)
    with torch.no_grad():
        torch.testing.assert_close(model(x), engine_cnn(x), rtol=1e-4, atol=1e-4)
    detail = info["runtime_detail"]
    assert not any(detail["options"].values()) and detail["pnnx_fp16_weights"] is False
    assert detail["timing"]["images"] == len(x)


@pytest.mark.parametrize("runtime", ["ncnn-fp16-storage", "ncnn-fp16"])
def test_fp16_storage_rounds_like_a_float16_weight_copy(engine_cnn, engine_batches, runtime):
    """FP16 storage keeps weights and activations as float16 between layers: its error is of the
    order of torch's own float16 rounding of the model, not zero and not larger than a few times it."""
    _, x = engine_batches
    info = {}
    model = build_model(engine_cnn, Pipeline(runtime=runtime, input_size=32), info=info)
    with torch.no_grad():
        expected = engine_cnn(x)
        got = model(x)
        half = copy.deepcopy(engine_cnn).half()(x.half()).float()
    ncnn_error = (got - expected).abs().max().item()
    torch_half_error = (half - expected).abs().max().item()
    assert 0 < ncnn_error < 10 * torch_half_error
    options = info["runtime_detail"]["options"]
    assert options["use_fp16_storage"] and options["use_fp16_packed"]
    assert options["use_fp16_arithmetic"] == (runtime == "ncnn-fp16")


class Gather(torch.nn.Module):
    """Data-dependent indexing (argsort of the input): pnnx has no ncnn layer for it."""

    def forward(self, x):
        order = torch.argsort(x.flatten(1), dim=1)
        return torch.gather(x.flatten(1), 1, order)[:, :4]


def test_a_model_pnnx_cannot_convert_is_a_build_failure_with_the_reason(engine_cnn):
    models = build_models(
        Gather(),
        {"ref": Pipeline(input_size=8), "ncnn": Pipeline(runtime="ncnn", input_size=8)},
        reference=Pipeline(input_size=8),
        info=(info := {}),
    )
    assert isinstance(models["ncnn"], BuildFailure)
    assert "pnnx left operators ncnn has no layer for" in models["ncnn"].message
    assert info["ncnn"]["error"] == models["ncnn"].message
