from pathlib import Path

import pytest

from tests.pipeline.images import jpeg, photo


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory) -> list[Path]:
    """Twelve 80x80 JPEGs (the scenes size) with a list file `labels.txt`, labels 0..9."""
    folder = tmp_path_factory.mktemp("scenes-like")
    paths, lines = [], []
    for i in range(12):
        path = folder / f"{i:02d}.jpg"
        path.write_bytes(jpeg(photo(80, 80, seed=i)))
        paths.append(path)
        lines.append(f"{path.name} {i % 10}")
    (folder / "labels.txt").write_text("\n".join(lines) + "\n")
    return paths
