"""ExecuTorch with the XNNPACK backend as runtime options: float32, and INT8 through PT2E
(XNNPACKQuantizer), checked against torch and against the same PT2E graph run in torch."""

import pytest
import torch

from sysnoise import extras
from sysnoise.inference.build import build_model
from sysnoise.pipeline.spec import Pipeline

pytest.importorskip("executorch", reason=extras.install_line("executorch"))


def test_executorch_fp32_gives_the_torch_logits(engine_cnn, engine_batches):
    _, x = engine_batches
    info = {}
    model = build_model(engine_cnn, Pipeline(runtime="executorch-xnnpack", input_size=32), info=info)
    with torch.no_grad():
        torch.testing.assert_close(model(x), engine_cnn(x), rtol=1e-4, atol=1e-4)
    detail = info["runtime_detail"]
    # convolutions and the linear layer run in XNNPACK; the spatial mean is left to portable kernels
    assert detail["backend"] == "XnnpackPartitioner" and detail["not_delegated"] == ["aten.mean.dim"]
    assert detail["input_shape"] == [1, 3, 32, 32] and detail["timing"]["images"] == len(x)


def test_executorch_int8_matches_the_pt2e_graph_it_lowered(engine_cnn, engine_batches):
    """XNNPACK's integer kernels against torch running the same converted PT2E graph (quantize /
    dequantize in float): equal up to a rounding step, and both off the float32 model."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    calibration, x = engine_batches
    info = {}
    model = build_model(engine_cnn, Pipeline(runtime="executorch-xnnpack-int8", input_size=32), calibration, info=info)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(engine_cnn, (x[:1],)).module(), quantizer)
    with torch.no_grad():
        for image in torch.cat(calibration):
            prepared(image[None])
        simulated = convert_pt2e(prepared)
        expected = torch.cat([simulated(image[None]) for image in x])
        got, fp32 = model(x), engine_cnn(x)
    scale = fp32.abs().max().item()
    assert (got - expected).abs().max().item() < 0.02 * scale
    assert 0 < (got - fp32).abs().max().item() < 0.2 * scale
    assert info["runtime_detail"]["quantization"]["calibration_samples"] == 16
