"""RGB <-> YUV (Y'CbCr) maths, vectorised with numpy: what a camera, video decoder or NPU does to
pixels on their way to a model.

Two arithmetic forms of BT.601 limited range, as in the SysNoise paper's appendix A:
- float: Y = round(0.256788 R + 0.504129 G + 0.097906 B) + 16, ...; R = clip(round(1.164383 C + 1.596027 E)), ...
- int:   Y = ((66 R + 129 G + 25 B + 128) >> 8) + 16, ...;       R = clip((298 C + 409 E + 128) >> 8), ...
  (the inverse is the paper's integer approximation; the forward is its usual integer counterpart,
  as in libyuv and Microsoft's YUV documentation).
Plus generic float forms for any matrix (BT.601 / BT.709) and range (limited 16-235 / full 0-255),
used to model range and matrix mix-ups.

4:2:0 (NV12 keeps the same samples: a full-resolution Y plane, then interleaved U,V at half
resolution in both axes): chroma is subsampled by a 2x2 average (rounded half up) or by keeping
the top-left sample, and upsampled again by repeating each sample (nearest) or bilinearly with
chroma sited at the centre of its 2x2 block (weights 3/4 and 1/4, edges replicated, as libjpeg's
"fancy" upsampling). Odd sizes are padded by edge replication to even and cropped back.
"""

from __future__ import annotations

import numpy as np

# Kr, Kb of each matrix (ITU-R BT.601 and BT.709).
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def rgb_to_yuv_float(rgb: np.ndarray, matrix: str = "bt601", full_range: bool = False) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxWx3 uint8 YUV, rounded to integers (float arithmetic)."""
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    x = rgb.astype(np.float64)
    y = kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2]  # 0..255
    u = (x[..., 2] - y) / (2 * (1 - kb))  # -127.5..127.5
    v = (x[..., 0] - y) / (2 * (1 - kr))
    if full_range:
        planes = (y, u + 128, v + 128)
    else:
        planes = (y * 219 / 255 + 16, u * 224 / 255 + 128, v * 224 / 255 + 128)
    return np.clip(np.floor(np.stack(planes, -1) + 0.5), 0, 255).astype(np.uint8)


def yuv_to_rgb_float(yuv: np.ndarray, matrix: str = "bt601", full_range: bool = False) -> np.ndarray:
    """HxWx3 uint8 YUV -> HxWx3 uint8 RGB, rounded and clipped (float arithmetic)."""
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    x = yuv.astype(np.float64)
    if full_range:
        y, u, v = x[..., 0], x[..., 1] - 128, x[..., 2] - 128
    else:
        y, u, v = (x[..., 0] - 16) * 255 / 219, (x[..., 1] - 128) * 255 / 224, (x[..., 2] - 128) * 255 / 224
    r = y + 2 * (1 - kr) * v
    b = y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / kg
    return np.clip(np.floor(np.stack([r, g, b], -1) + 0.5), 0, 255).astype(np.uint8)


# The paper's appendix A, written out with its own rounded coefficients.
PAPER_FORWARD = np.array(
    [
        [0.256788, 0.504129, 0.097906],
        [-0.148223, -0.290993, 0.439216],
        [0.439216, -0.367788, -0.071427],
    ]
)
PAPER_INVERSE = np.array(
    [  # columns: C = Y-16, D = U-128, E = V-128
        [1.164383, 0.0, 1.596027],
        [1.164383, -0.391762, -0.812968],
        [1.164383, 2.017232, 0.0],
    ]
)


def rgb_to_yuv_paper_float(rgb: np.ndarray) -> np.ndarray:
    yuv = np.floor(rgb.astype(np.float64) @ PAPER_FORWARD.T + 0.5) + (16, 128, 128)
    return np.clip(yuv, 0, 255).astype(np.uint8)


def yuv_to_rgb_paper_float(yuv: np.ndarray) -> np.ndarray:
    cde = yuv.astype(np.float64) - (16, 128, 128)
    return np.clip(np.floor(cde @ PAPER_INVERSE.T + 0.5), 0, 255).astype(np.uint8)


def rgb_to_yuv_int(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    return np.stack([y, u, v], -1).astype(np.uint8)  # always within 16..240: no clip needed


def yuv_to_rgb_int(yuv: np.ndarray) -> np.ndarray:
    c = yuv[..., 0].astype(np.int32) - 16
    d = yuv[..., 1].astype(np.int32) - 128
    e = yuv[..., 2].astype(np.int32) - 128
    r = (298 * c + 409 * e + 128) >> 8
    g = (298 * c - 100 * d - 208 * e + 128) >> 8
    b = (298 * c + 516 * d + 128) >> 8
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def _pad_even(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge")


def subsample(plane: np.ndarray, method: str = "average") -> np.ndarray:
    """HxW uint8 -> ceil(H/2) x ceil(W/2): 2x2 mean rounded half up, or the top-left sample."""
    padded = _pad_even(plane)
    if method == "topleft":
        return np.ascontiguousarray(padded[::2, ::2])
    if method != "average":
        raise ValueError(f"unknown chroma subsampling {method!r}")
    p = padded.astype(np.uint16)
    return ((p[::2, ::2] + p[1::2, ::2] + p[::2, 1::2] + p[1::2, 1::2] + 2) >> 2).astype(np.uint8)


def _upsample_axis(plane: np.ndarray, axis: int) -> np.ndarray:
    """Double one axis bilinearly, samples at block centres: out[2i] = 3/4 x[i] + 1/4 x[i-1], out[2i+1] = 3/4 x[i] + 1/4 x[i+1]."""
    x = np.moveaxis(plane.astype(np.float64), axis, 0)
    before = np.concatenate([x[:1], x[:-1]])
    after = np.concatenate([x[1:], x[-1:]])
    out = np.empty((2 * x.shape[0],) + x.shape[1:])
    out[0::2] = 0.75 * x + 0.25 * before
    out[1::2] = 0.75 * x + 0.25 * after
    return np.moveaxis(out, 0, axis)


def upsample(plane: np.ndarray, shape: tuple[int, int], method: str = "nearest") -> np.ndarray:
    """Half-resolution chroma -> `shape` (H, W): repeat each sample, or bilinear (centre-sited)."""
    if method == "nearest":
        full = plane.repeat(2, axis=0).repeat(2, axis=1)
    elif method == "bilinear":
        full = np.floor(_upsample_axis(_upsample_axis(plane, 0), 1) + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"unknown chroma upsampling {method!r}")
    return np.ascontiguousarray(full[: shape[0], : shape[1]])


def to_nv12(yuv: np.ndarray, subsampling: str = "average") -> bytes:
    """The NV12 buffer of a 4:4:4 YUV image (even size): Y plane, then interleaved U,V rows."""
    h, w = yuv.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"NV12 needs an even size, got {w}x{h}")
    u, v = (subsample(yuv[..., i], subsampling) for i in (1, 2))
    return yuv[..., 0].tobytes() + np.stack([u, v], -1).tobytes()


def from_nv12(buffer: bytes, width: int, height: int, upsampling: str = "nearest") -> np.ndarray:
    """NV12 buffer -> HxWx3 4:4:4 YUV with chroma upsampled."""
    y = np.frombuffer(buffer, np.uint8, width * height).reshape(height, width)
    uv = np.frombuffer(buffer, np.uint8, offset=width * height).reshape(height // 2, width // 2, 2)
    return np.stack(
        [y, upsample(uv[..., 0], (height, width), upsampling), upsample(uv[..., 1], (height, width), upsampling)], -1
    )


def chroma_420(yuv: np.ndarray, subsampling: str = "average", upsampling: str = "nearest") -> np.ndarray:
    """A 4:4:4 YUV image after a 4:2:0 round trip of its chroma (any size; the luma is untouched)."""
    shape = yuv.shape[:2]
    planes = [yuv[..., 0]] + [upsample(subsample(yuv[..., i], subsampling), shape, upsampling) for i in (1, 2)]
    return np.stack(planes, -1)
