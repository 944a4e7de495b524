import os
from pathlib import Path

import numpy as np
import pytest

import sysnoise.catalogue  # noqa: F401  (every registry filled, as the entry points have them)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    # Tests never write into the user's ~/.cache.
    os.environ.setdefault("SYSNOISE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _results_follow_the_published_schema(monkeypatch):
    """Every results.json a test writes is checked against the JSON Schema the package ships."""
    import json

    import jsonschema

    from sysnoise.report import results as module
    from sysnoise.schemas import results_schema

    validator = jsonschema.Draft202012Validator(results_schema())
    original = module.write_results

    def checked(results: dict, path) -> None:
        errors = sorted(validator.iter_errors(json.loads(json.dumps(results))), key=lambda e: list(e.path))
        assert not errors, f"{path}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
        original(results, path)

    monkeypatch.setattr(module, "write_results", checked)


@pytest.fixture(scope="session")
def demo_list_file() -> Path:
    from sysnoise.zoo.photos import materialise

    return materialise()


def write_jpeg(path: Path, array: np.ndarray, quality: int = 90) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, "JPEG", quality=quality)
    return path


@pytest.fixture
def gradient_images(tmp_path) -> list[Path]:
    """Three small JPEGs with structure (gradients + a square), different sizes and aspect ratios."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(60, 80), (90, 70), (64, 64)]):
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], -1).astype(np.uint8)
        img[h // 4 : h // 2, w // 4 : w // 2] = rng.integers(0, 255, 3)
        paths.append(write_jpeg(tmp_path / "imgs" / f"img{i}.jpg", img))
    return paths
