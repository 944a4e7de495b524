"""OpenVINO's pre-processing API (PrePostProcessor) as pre-processing options: what a deployment
that builds its resize or its NV12 -> RGB conversion into the OpenVINO model computes.

Each option is a tiny OpenVINO model that holds only that step: an identity over an NHWC float
image, with PrePostProcessor steps in front (uint8 NHWC tensor of any spatial size in, `resize`
with one of its ResizeAlgorithms, or an NV12 two-plane tensor with `convert_color(RGB)`), compiled
for the CPU at float32. In a deployed model the step's float output would flow on into the network;
here it is rounded to uint8, the pipeline's contract between stages (a rounding of at most half a
level, far below the differences these options measure).

- resize openvino-linear, -cubic, -nearest: RESIZE_LINEAR / RESIZE_CUBIC / RESIZE_NEAREST
  (OpenCV-like fixed kernels, no antialiasing)
  Not offered: RESIZE_BILINEAR_PILLOW / RESIZE_BICUBIC_PILLOW (Pillow's antialiased filters
  reimplemented). They match Pillow within one level, but OpenVINO 2026.4's CPU plugin took 42 s
  and 82 s for one 4000x3000 photo to 224x224 here (Pillow: 0.2 s), and 218 s for a 60000x1 PNG:
  as options they would let one large image stall a run.
- colour nv12-openvino: the camera side as nv12-int (BT.601 limited, integer form, chroma 2x2
  average) packed as NV12 planes, converted back to RGB inside the OpenVINO model
"""

from __future__ import annotations

from functools import cache

import numpy as np

from sysnoise import extras
from sysnoise.pipeline import yuv
from sysnoise.pipeline.colour import COLOURS
from sysnoise.pipeline.resize import RESIZES

OPENVINO = {"available": lambda: extras.available("openvino"), "install": extras.install_line("openvino")}


def _identity(shape: list[int]):
    """An OpenVINO model that returns its float32 NHWC input: the network the steps are put in front of."""
    import openvino as ov
    import openvino.opset13 as ops

    image = ops.parameter(shape, ov.Type.f32, name="image")
    return ov.Model([ops.result(ops.convert(image, ov.Type.f32))], [image], "identity")


def _compiled(model):
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _to_uint8(out) -> np.ndarray:
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@cache
def resizer(algorithm: str, width: int, height: int):
    """A compiled model: any uint8 NHWC image in, the PrePostProcessor's resize to width x height out."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor, ResizeAlgorithm

    ppp = PrePostProcessor(_identity([1, height, width, 3]))
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_spatial_dynamic_shape()
    ppp.input().preprocess().convert_element_type(ov.Type.f32).resize(getattr(ResizeAlgorithm, algorithm))
    ppp.input().model().set_layout(ov.Layout("NHWC"))
    return _compiled(ppp.build())


def _resize(algorithm: str):
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return _to_uint8(resizer(algorithm, *size)(np.ascontiguousarray(image)[None])[0][0])

    return resize


for _algorithm, _name, _text in [
    ("RESIZE_LINEAR", "linear", "fixed 2x2 kernel, no antialiasing (as OpenCV INTER_LINEAR)"),
    ("RESIZE_CUBIC", "cubic", "fixed 4x4 kernel, no antialiasing"),
    ("RESIZE_NEAREST", "nearest", "nearest neighbour"),
]:
    RESIZES.register(
        f"openvino-{_name}",
        f"OpenVINO PrePostProcessor resize {_algorithm}: {_text}",
        library="openvino",
        flag=_algorithm,
        **OPENVINO,
    )(_resize(_algorithm))


@cache
def nv12_to_rgb():
    """A compiled model: NV12 two planes (Y: 1xHxWx1, UV: 1x(H/2)x(W/2)x2, uint8) in, RGB out."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(_identity([1, -1, -1, 3]))
    ppp.input().tensor().set_element_type(ov.Type.u8).set_color_format(ColorFormat.NV12_TWO_PLANES)
    ppp.input().preprocess().convert_color(ColorFormat.RGB).convert_element_type(ov.Type.f32)
    ppp.input().model().set_layout(ov.Layout("NHWC"))
    return _compiled(ppp.build())


@COLOURS.register(
    "nv12-openvino",
    "RGB->YUV 4:2:0 (NV12, BT.601 limited, integer form, chroma 2x2 average) "
    "->RGB inside the model by OpenVINO's PrePostProcessor convert_color",
    library="openvino",
    subsampling="average",
    **OPENVINO,
)
def nv12_openvino(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    even = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")  # NV12 planes need even sizes
    planes = yuv.rgb_to_yuv_int(even)
    chroma = np.stack([yuv.subsample(planes[..., 1]), yuv.subsample(planes[..., 2])], axis=-1)
    rgb = nv12_to_rgb()({0: np.ascontiguousarray(planes[None, ..., :1]), 1: np.ascontiguousarray(chroma[None])})[0][0]
    return _to_uint8(rgb)[:height, :width]
