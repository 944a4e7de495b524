"""The demo's real photographs: the manifest (photos/manifest.json) names each photo's source
package or committed file, its licence and a human-judged ImageNet label set.

`materialise()` writes them as one JPEG dataset with a list file. JPEG sources keep their bytes;
other sources (PNG) are JPEG-encoded once, deterministically, with the settings recorded beside
them, because decoder noise needs JPEG input. The folder is rebuilt when the manifest or the
encoder (Pillow) changes.
"""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

from sysnoise.engine.cache import cache_root
from sysnoise.engine.store import atomic_write_text, digest

PHOTOS = Path(__file__).parent / "photos"
ENCODER = {"library": "Pillow", "format": "JPEG", "quality": 90, "subsampling": "4:2:0", "optimize": False}


def manifest() -> dict:
    return json.loads((PHOTOS / "manifest.json").read_text())


def source_bytes(entry: dict) -> bytes:
    source = entry["source"]
    if "file" in source:
        return (PHOTOS / source["file"]).read_bytes()
    spec = importlib.util.find_spec(source["package"])
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"photo {entry['id']!r} needs the package {source['package']!r}")
    return (Path(spec.submodule_search_locations[0]) / source["path"]).read_bytes()


def as_jpeg(data: bytes) -> tuple[bytes, bool]:
    """(JPEG bytes, whether they were re-encoded)."""
    if data[:3] == b"\xff\xd8\xff":
        return data, False
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        buffer = io.BytesIO()
        im.convert("RGB").save(buffer, "JPEG", quality=ENCODER["quality"], subsampling=2, optimize=False)
    return buffer.getvalue(), True


def materialise(folder: Path | None = None) -> Path:
    """Write the demo dataset (JPEGs + labels.txt) and return the list file's path."""
    import PIL

    info = manifest()
    key = digest({"manifest": info, "encoder": ENCODER, "pillow": PIL.__version__})[:16]
    folder = Path(folder or cache_root() / f"photos-{key}")
    list_file = folder / "labels.txt"
    if list_file.is_file():
        return list_file
    folder.mkdir(parents=True, exist_ok=True)
    lines, records = [], []
    for entry in info["photos"]:
        data, encoded = as_jpeg(source_bytes(entry))
        name = f"{entry['id']}.jpg"
        (folder / name).write_bytes(data)
        lines.append(f"{name} {','.join(map(str, entry['labels']))}".rstrip())
        records.append({"file": name, "reencoded": encoded, "origin": entry["origin"], "licence": entry["licence"]})
    atomic_write_text(
        folder / "dataset.json",
        json.dumps({"encoder": {**ENCODER, "pillow": PIL.__version__}, "photos": records}, indent=1),
    )
    atomic_write_text(list_file, "# demo photos: file  imagenet-label-set\n" + "\n".join(lines) + "\n")
    return list_file
