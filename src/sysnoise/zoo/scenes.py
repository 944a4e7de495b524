"""`scenes`: a seeded generator of labeled images, for the controlled model zoo.

Each image is a random crop of a real photograph (scikit-image's and matplotlib's sample photos
plus some of the committed demo photos, a pinned list) with shapes pasted on it. A shape has one
of ten classes and a random size, rotation, aspect, fill (solid, stripes, checker, gradient or a
patch of another photo), noise and edge softness; irregular blobs are pasted as distractors that
belong to no class. Two kinds of scene:

* classification (80x80): one labeled shape near the centre (object-centric, +-12 % of the
  size), 0-1 distractor blob anywhere; label = the shape's class.
* detection / segmentation (128x128): 1-4 labeled shapes, 0-1 blob; every shape has a box and
  a visible-pixel mask (occlusion is computed, so boxes and masks agree), and the image has a
  semantic label map (0 = background, 1..10 = class + 1, 255 = ignore: a one-pixel band where
  a labeled shape's visible region meets anything else, as in Pascal VOC).

Every image is a pure function of (seed, split, index): `numpy.random.default_rng([seed,
split, index])` draws everything, so a small n is a prefix of a large one and generation can
run in parallel. Images are written as JPEG by the declared training system (Pillow, quality
90, 4:2:0, no optimisation); label maps as PNG. `materialise()` writes a split into the cache
(`SYSNOISE_CACHE`, default ~/.cache/sysnoise), keyed by everything that changes the bytes.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sysnoise.engine.store import digest
from sysnoise.zoo.photos import cache_root

VERSION = 4
CLASSES = ("circle", "ring", "triangle", "square", "pentagon", "hexagon", "star", "cross", "crescent", "arrow")
SPLITS = {"train": 0, "val": 1, "test": 2}
ENCODER = {"library": "Pillow", "format": "JPEG", "quality": 90, "subsampling": "4:2:0", "optimize": False}
IGNORE = 255

# Real photographs used as backgrounds: (package, path inside it) or (None, committed demo photo).
BACKGROUNDS = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/brick.png"),
    ("skimage", "data/camera.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/coins.png"),
    ("skimage", "data/grass.png"),
    ("skimage", "data/gravel.png"),
    ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/motorcycle_right.png"),
    ("skimage", "data/page.png"),
    ("skimage", "data/retina.jpg"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/ihc.png"),
    ("skimage", "data/moon.png"),
    ("skimage", "data/text.png"),
    ("skimage", "data/color.png"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    (None, "fruits.jpg"),
    (None, "baboon.jpg"),
    (None, "home.jpg"),
    (None, "building.jpg"),
    (None, "aero1.jpg"),
    (None, "aloeL.jpg"),
    (None, "board.jpg"),
    (None, "box_in_scene.png"),
    (None, "left.jpg"),
    (None, "leuvenA.jpg"),
    (None, "stuff.jpg"),
    (None, "smarties.png"),
    (None, "hfs_001.jpg"),
    (None, "hfs_002.jpg"),
    (None, "rubberwhale1.png"),
    (None, "sudoku.png"),
    (None, "text_scenetext01.jpg"),
)
MAX_BACKGROUND_SIDE = 384  # backgrounds are downscaled once so the shorter side is at most this


@dataclass(frozen=True)
class SceneConfig:
    kind: str  # "classification" | "detection"
    size: int
    min_objects: int
    max_objects: int
    min_radius: float
    max_radius: float
    max_distractors: int
    centre_jitter: float | None = None  # labeled shapes centred, +- this fraction of the size (object-centric)


CONFIGS = {
    "classification": SceneConfig("classification", 80, 1, 1, 12.0, 30.0, 1, centre_jitter=0.12),
    "detection": SceneConfig("detection", 128, 1, 4, 12.0, 32.0, 1),
}


# --------------------------------------------------------------------------- backgrounds
def _background_bytes(package: str | None, path: str) -> bytes:
    if package is None:
        return (Path(__file__).parent / "photos" / path).read_bytes()
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"scenes background {path!r} needs the package {package!r}")
    return (Path(spec.submodule_search_locations[0]) / path).read_bytes()


@lru_cache(maxsize=1)
def backgrounds() -> tuple[np.ndarray, ...]:
    """The background photos as RGB uint8 arrays, shorter side at most MAX_BACKGROUND_SIDE."""
    from PIL import Image

    out = []
    for package, path in BACKGROUNDS:
        with Image.open(io.BytesIO(_background_bytes(package, path))) as im:
            im = im.convert("RGB")
            scale = MAX_BACKGROUND_SIDE / min(im.size)
            if scale < 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)
            out.append(np.asarray(im))
    return tuple(out)


def backgrounds_digest() -> str:
    import hashlib

    h = hashlib.sha256()
    for package, path in BACKGROUNDS:
        h.update(hashlib.sha256(_background_bytes(package, path)).digest())
    return h.hexdigest()


def _background_crop(rng: np.random.Generator, photos, size: int) -> np.ndarray:
    from PIL import Image

    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.2, 1.0) * min(h, w))
    side = max(side, min(h, w, 48))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BILINEAR))


# --------------------------------------------------------------------------- shapes
def _circle(n: int = 64, radius: float = 1.0, dx: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([dx + radius * np.cos(t), radius * np.sin(t)], 1)


def _regular(n: int) -> np.ndarray:
    t = -np.pi / 2 + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(t), np.sin(t)], 1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    t = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _cross(w: float = 0.34) -> np.ndarray:
    return np.array(
        [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)],
        float,
    )


_ARROW = np.array([(-1, -0.28), (0.15, -0.28), (0.15, -0.7), (1, 0), (0.15, 0.7), (0.15, 0.28), (-1, 0.28)], float)

# class -> list of (polygon in unit coordinates, fill value): drawn in order, 255 adds, 0 cuts.
SHAPES = {
    "circle": [(_circle(), 255)],
    "ring": [(_circle(), 255), (_circle(radius=0.55), 0)],
    "triangle": [(_regular(3) * 1.1 + [0, 0.15], 255)],
    "square": [(_regular(4) * 1.05, 255)],
    "pentagon": [(_regular(5), 255)],
    "hexagon": [(_regular(6), 255)],
    "star": [(_star(), 255)],
    "cross": [(_cross(), 255)],
    "crescent": [(_circle(), 255), (_circle(radius=0.85, dx=0.5), 0)],
    "arrow": [(_ARROW, 255)],
}
assert tuple(SHAPES) == CLASSES


def _blob(rng: np.random.Generator) -> list:
    n = int(rng.integers(7, 13))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.35, 1.0, n)
    return [(np.stack([r * np.cos(t), r * np.sin(t)], 1), 255)]


SUPERSAMPLE = 4


def _render_alpha(parts, radius: float, angle: float, aspect: float, centre: tuple[float, float], size: int):
    """Coverage in [0, 1] of the shape on a size x size canvas (supersampled, box-filtered)."""
    from PIL import Image, ImageDraw

    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    extent = int(math.ceil(radius * 1.25)) + 2
    x0, y0 = int(math.floor(centre[0])) - extent, int(math.floor(centre[1])) - extent
    side = 2 * extent + 1
    canvas = Image.new("L", (side * SUPERSAMPLE, side * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    for poly, value in parts:
        pts = (poly * [radius, radius * aspect]) @ rot.T + [centre[0] - x0, centre[1] - y0]
        draw.polygon([tuple(p) for p in (pts * SUPERSAMPLE).tolist()], fill=value)
    local = np.asarray(canvas.resize((side, side), Image.Resampling.BOX), np.float32) / 255.0
    alpha = np.zeros((size, size), np.float32)
    ys, xs = slice(max(y0, 0), min(y0 + side, size)), slice(max(x0, 0), min(x0 + side, size))
    alpha[ys, xs] = local[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return alpha


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.15, 1.0))
    return np.array(rgb, np.float32) * 255


MIN_CONTRAST = 45.0


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _fill(rng: np.random.Generator, photos, h: int, w: int) -> np.ndarray:
    """An h x w x 3 float texture for one shape."""
    kind = rng.choice(["solid", "stripes", "checker", "gradient", "photo"], p=[0.4, 0.2, 0.15, 0.2, 0.05])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = _random_colour(rng), _random_colour(rng)
    if kind == "solid":
        tex = np.broadcast_to(a, (h, w, 3)).copy()
    elif kind in ("stripes", "gradient"):
        t = rng.uniform(0, np.pi)
        u = xx * math.cos(t) + yy * math.sin(t)
        if kind == "stripes":
            m = (np.sin(u * (2 * np.pi / rng.uniform(3, 12))) > 0)[..., None].astype(np.float32)
        else:
            m = ((u - u.min()) / max(float(np.ptp(u)), 1.0))[..., None]
        tex = a * (1 - m) + b * m
    elif kind == "checker":
        p = rng.uniform(2.5, 8)
        m = ((np.floor(xx / p) + np.floor(yy / p)) % 2)[..., None]
        tex = a * (1 - m) + b * m
    else:
        tex = _background_crop(rng, photos, max(h, w))[:h, :w].astype(np.float32)
        tex = tex * rng.uniform(0.5, 1.3) + rng.uniform(-40, 40)
    return tex + rng.standard_normal((h, w, 3), dtype=np.float32) * rng.uniform(0, 6)


def _place(rng, parts, cfg: SceneConfig, radius: float, alphas: list[np.ndarray], centred: bool = False):
    """Draw a pose for a shape; None if it would hide too much of what is already there."""
    margin = radius * 1.05
    low, high = margin, cfg.size - margin
    if centred and cfg.centre_jitter is not None:
        half = cfg.size / 2
        low, high = max(low, half - cfg.centre_jitter * cfg.size), min(high, half + cfg.centre_jitter * cfg.size)
        low, high = min(low, half), max(high, half)
    for _ in range(20):
        centre = (rng.uniform(low, high), rng.uniform(low, high))
        angle, aspect = rng.uniform(0, 2 * np.pi), rng.uniform(0.75, 1.0)
        alpha = _render_alpha(parts, radius, angle, aspect, centre, cfg.size)
        mine = alpha >= 0.5
        ok = True
        for other in alphas:
            theirs = other >= 0.5
            overlap = np.count_nonzero(mine & theirs)
            if overlap > 0.2 * min(np.count_nonzero(mine), max(np.count_nonzero(theirs), 1)):
                ok = False
                break
        if ok:
            return alpha
    return None


def render(seed: int, split: str, index: int, kind: str = "classification") -> dict:
    """One scene: {'image': HxWx3 uint8, 'objects': [{'category', 'mask'}], 'label_map': HxW uint8}.

    Object masks are the visible pixels (coverage >= 0.5 and not covered by a later layer)."""
    from PIL import Image, ImageFilter

    cfg = CONFIGS[kind]
    rng = np.random.default_rng([seed, SPLITS[split], index, 0 if kind == "classification" else 1])
    photos = backgrounds()
    size = cfg.size
    image = _background_crop(rng, photos, size).astype(np.float32)
    n_objects = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    n_blobs = int(rng.integers(0, cfg.max_distractors + 1))
    layers = [("blob", None)] * n_blobs + [("shape", int(rng.integers(len(CLASSES)))) for _ in range(n_objects)]
    order = rng.permutation(len(layers))
    owner = np.full((size, size), -1, np.int32)  # -1 background, -2 blob, i >= 0 object i
    alphas, objects = [], []
    for position in order:
        what, category = layers[position]
        parts = _blob(rng) if what == "blob" else SHAPES[CLASSES[category]]
        radius = rng.uniform(cfg.min_radius, cfg.max_radius) * (0.8 if what == "blob" else 1.0)
        alpha = _place(rng, parts, cfg, radius, alphas, centred=what == "shape")
        if alpha is None:
            if what == "shape" and kind == "classification":  # the one labeled object must exist
                alpha = _render_alpha(parts, radius, 0.0, 1.0, (size / 2, size / 2), size)
            else:
                continue
        alphas.append(alpha)
        ys, xs = np.nonzero(alpha)
        y0, y1 = max(int(ys.min()) - 2, 0), min(int(ys.max()) + 3, size)
        x0, x1 = max(int(xs.min()) - 2, 0), min(int(xs.max()) + 3, size)
        window = alpha[y0:y1, x0:x1]
        softness = rng.uniform(0, 0.8)
        if softness > 0.3:
            window = (
                np.asarray(
                    Image.fromarray((window * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(softness)),
                    np.float32,
                )
                / 255.0
            )
        soft = window[..., None]
        texture = _fill(rng, photos, y1 - y0, x1 - x0)
        # keep every shape visible: its mean luminance differs from what it covers by MIN_CONTRAST
        weight = window / max(float(window.sum()), 1e-6)
        under = float((_luma(image[y0:y1, x0:x1]) * weight).sum())
        mean = float((_luma(texture) * weight).sum())
        if abs(mean - under) < MIN_CONTRAST:
            texture += (under + MIN_CONTRAST if under < 128 else under - MIN_CONTRAST) - mean
        image[y0:y1, x0:x1] = image[y0:y1, x0:x1] * (1 - soft) + texture * soft
        if what == "shape":
            owner[alpha >= 0.5] = len(objects)
            objects.append({"category": category})
        else:
            owner[alpha >= 0.5] = -2
    # global effects: light, contrast, blur, sensor noise
    image = (image - 128) * rng.uniform(0.7, 1.15) + 128 + rng.uniform(-25, 25)
    image = image + rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(0, 6)
    pil = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))
    if rng.random() < 0.2:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    for i, obj in enumerate(objects):
        obj["mask"] = owner == i
    return {
        "image": np.asarray(pil),
        "objects": [o for o in objects if o["mask"].any()],
        "label_map": label_map(owner, [o["category"] for o in objects]),
    }


def label_map(owner: np.ndarray, categories: list[int]) -> np.ndarray:
    """Semantic labels (0 background, c + 1 for class c) with a 1-pixel ignore band (255) where a
    labeled object's visible region meets anything else."""
    from scipy import ndimage

    lut = np.zeros(len(categories) + 2, np.uint8)  # index owner + 2: -2 blob, -1 background -> 0
    lut[2:] = np.asarray(categories, np.uint8) + 1
    labels = lut[owner + 2]
    boundary = ndimage.maximum_filter(owner, 3, mode="nearest") != ndimage.minimum_filter(owner, 3, mode="nearest")
    labeled_nearby = ndimage.maximum_filter(owner, 3, mode="nearest") >= 0
    labels[boundary & labeled_nearby] = IGNORE
    return labels


def box_of(mask: np.ndarray) -> list[float]:
    """COCO [x, y, width, height] in pixel-edge coordinates: the tight box of the mask's pixels."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]


def encode_jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=ENCODER["quality"], subsampling=2, optimize=False)
    return buffer.getvalue()


def encode_png(labels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(labels, mode="L").save(buffer, "PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


# --------------------------------------------------------------------------- writing splits
DEFAULT_SIZES = {
    ("classification", "train"): 5000,
    ("classification", "val"): 2000,
    ("detection", "train"): 3000,
    ("detection", "val"): 1000,
}


def _worker(args):
    seed, split, kind, start, stop = args
    out = []
    for index in range(start, stop):
        scene = render(seed, split, index, kind)
        record = {"index": index, "jpeg": encode_jpeg(scene["image"])}
        if kind == "classification":
            record["label"] = scene["objects"][0]["category"] if scene["objects"] else None
        else:
            from pycocotools import mask as mask_utils

            anns = []
            for obj in scene["objects"]:
                rle = mask_utils.encode(np.asfortranarray(obj["mask"].astype(np.uint8)))
                anns.append(
                    {
                        "category_id": obj["category"] + 1,
                        "bbox": box_of(obj["mask"]),
                        "area": float(obj["mask"].sum()),
                        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
                    }
                )
            record["annotations"] = anns
            record["png"] = encode_png(scene["label_map"])
        out.append(record)
    return out


def generate(seed: int, split: str, kind: str, n: int, workers: int | None = None) -> list[dict]:
    """Records (index, jpeg bytes, label or annotations + png) for indices 0..n-1, in order."""
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    step = 50
    jobs = [(seed, split, kind, s, min(s + step, n)) for s in range(0, n, step)]
    if workers <= 1 or len(jobs) <= 1:
        return [r for job in jobs for r in _worker(job)]
    import multiprocessing

    with multiprocessing.get_context("fork" if os.name == "posix" else "spawn").Pool(workers) as pool:
        return [r for chunk in pool.map(_worker, jobs) for r in chunk]


def fingerprint(seed: int, split: str, kind: str, n: int) -> dict:
    import PIL

    return {
        "generator": "sysnoise.zoo.scenes",
        "version": VERSION,
        "seed": seed,
        "split": split,
        "kind": kind,
        "n": n,
        "config": asdict(CONFIGS[kind]),
        "classes": CLASSES,
        "encoder": ENCODER,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "backgrounds": backgrounds_digest(),
    }


def materialise(
    kind: str = "classification",
    split: str = "val",
    *,
    seed: int = 0,
    n: int | None = None,
    root: Path | None = None,
    workers: int | None = None,
) -> Path:
    """Write one split into the cache (once) and return its folder.

    classification: images/NNNNNN.jpg, labels.txt (`images/NNNNNN.jpg LABEL`), classes.txt.
    detection: images/NNNNNN.jpg, annotations.json (COCO: boxes, RLE masks, areas, categories),
    labels/NNNNNN.png (semantic label maps, 255 = ignore), segmentation.txt (`image label-map`).
    Both: dataset.json with the fingerprint (generator version, seed, encoder, library versions).
    """
    if kind not in CONFIGS or split not in SPLITS:
        raise ValueError(f"kind must be one of {list(CONFIGS)} and split one of {list(SPLITS)}")
    n = n if n is not None else DEFAULT_SIZES.get((kind, split), 1000)
    info = fingerprint(seed, split, kind, n)
    folder = Path(root or cache_root()) / f"scenes-{kind[:3]}-{split}-s{seed}-n{n}-{digest(info)[:12]}"
    done = folder / "dataset.json"
    if done.is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        _write(tmp, kind, generate(seed, split, kind, n, workers))
        (tmp / "dataset.json").write_text(json.dumps(info, indent=1, default=list))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first
            if not done.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write(folder: Path, kind: str, records: list[dict]) -> None:
    (folder / "images").mkdir()
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    if kind == "classification":
        lines = []
        for r in records:
            name = f"images/{r['index']:06d}.jpg"
            (folder / name).write_bytes(r["jpeg"])
            lines.append(f"{name} {r['label']}")
        (folder / "labels.txt").write_text(
            "# scenes classification: image label (see classes.txt)\n" + "\n".join(lines) + "\n"
        )
        return
    (folder / "labels").mkdir()
    size = CONFIGS[kind].size
    images, annotations, seg_lines = [], [], []
    for r in records:
        name = f"{r['index']:06d}"
        (folder / "images" / f"{name}.jpg").write_bytes(r["jpeg"])
        (folder / "labels" / f"{name}.png").write_bytes(r["png"])
        image_id = r["index"] + 1
        images.append({"id": image_id, "file_name": f"images/{name}.jpg", "width": size, "height": size})
        for ann in r["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0, **ann})
        seg_lines.append(f"images/{name}.jpg labels/{name}.png")
    coco = {
        "info": {"description": "sysnoise scenes (synthetic shapes on real photos)"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": c, "supercategory": "shape"} for i, c in enumerate(CLASSES)],
    }
    (folder / "annotations.json").write_text(json.dumps(coco))
    (folder / "segmentation.txt").write_text("\n".join(seg_lines) + "\n")
