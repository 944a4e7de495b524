"""`photos-large`: a few hundred real photographs from Debian packages, unlabeled.

Flip rate needs no labels and bounds the accuracy change, so a corpus of real photos measures an
ImageNet model's sensitivity to each noise with intervals of a point or two. The photos come from
free-licensed Debian packages (wallpapers, educational software's photo sets, Tux Paint's photo
stamps and starters); the selection (photo_corpus.json, shipped) names each chosen file by package,
path and sha256. The selection was made by looking at every candidate: only real photographs,
no drawings, renders, paintings or screenshots; cut-out photos (Tux Paint stamps) are marked.

`fetch()` downloads the packages with `apt-get download` (nothing is installed), unpacks them with
`dpkg-deb -x`, reads each selected file (GCompris keeps its images inside Qt .rcc resources),
checks its sha256, and writes the corpus into the cache: JPEG sources keep their bytes; PNG/WebP
sources are alpha-composited on white where transparent and JPEG-encoded once with the demo
photos' encoder settings (zoo.photos.ENCODER), because decoder noise needs JPEG input. Each file's
licence is read from its package's copyright file (machine-readable DEP-5 stanzas: the last
`Files:` pattern that matches the file's source path).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from sysnoise.engine.store import atomic_write_text, digest
from sysnoise.errors import UserInputError
from sysnoise.zoo.photos import ENCODER, cache_root
from sysnoise.zoo.qt_resources import rcc_files

SELECTION = Path(__file__).parent / "photo_corpus.json"
TOOLS = ("apt-get", "dpkg-deb")
WHITE = (255, 255, 255)


def selection() -> dict:
    return json.loads(SELECTION.read_text())


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise UserInputError(
            f"fetch-photos needs Debian's package tools ({', '.join(missing)} not found): run it on a "
            "Debian or Ubuntu system (or container) and copy the cached folder, or use --data with "
            "your own photos"
        )


# --- licences from a package's copyright file -------------------------------------------------


def copyright_stanzas(text: str) -> list[dict[str, str]]:
    """Paragraphs of a copyright file as {field: first line of its value}."""
    stanzas = []
    for paragraph in text.split("\n\n"):
        fields, last = {}, None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and last:
                fields[last] += " " + line.strip()  # continuation (Files: lists span lines)
            elif ":" in line:
                last, _, value = line.partition(":")
                fields[last] = value.strip()
        stanzas.append(fields)
    return stanzas


def _pattern_matches(pattern: str, path: PurePosixPath) -> str | None:
    """How a DEP-5 pattern (a source path) matches an installed or resource path, or None.

    Installed paths differ from source paths, so: the pattern matches the path or one of its tails
    (`images/x.png` matches `usr/share/app/images/x.png`); a file-specific pattern (no wildcard)
    also matches a tail that differs only in the extension (the package converted the image at
    build time: GCompris ships x.jpg as x.webp) or, failing that, the same file name in another
    folder (lomiri installs `16.04/x.jpg` as `backgrounds/x.jpg`)."""
    parts = path.parts[1:] if path.is_absolute() else path.parts
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    if any(fnmatch.fnmatchcase(tail, pattern) for tail in tails):
        return "pattern"
    if any(c in pattern for c in "*?["):
        return None
    stem = str(PurePosixPath(pattern).with_suffix(""))
    if any(str(PurePosixPath(tail).with_suffix("")) == stem for tail in tails):
        return "same path, other extension"
    return "same file name" if PurePosixPath(pattern).name == path.name else None


def licence_for(copyright_text: str, source_path: str) -> tuple[str, str]:
    """(licence, how it was found) of one file: the last DEP-5 stanza whose Files: patterns match
    (as DEP-5 says; see _pattern_matches for installed paths). A copyright file that is not
    machine-readable gives its licence sentence and says so."""
    path = PurePosixPath(source_path)
    found = None
    for stanza in copyright_stanzas(copyright_text):
        if "Files" not in stanza or "License" not in stanza:
            continue
        for pattern in stanza["Files"].split():
            how = _pattern_matches(pattern, path)
            if how:
                found = (stanza["License"], f"DEP-5 Files: {pattern} ({how})")
                break
    if found:
        return found
    sentence = next(
        (
            line.strip()
            for line in copyright_text.splitlines()
            if "licensed under" in line.lower() or "general public license" in line.lower()
        ),
        "",
    )
    return f"package-wide: {sentence or 'see the copyright file'}", "unstructured copyright file"


# --- one package: download, unpack, read members -----------------------------------------------


def download(package: str, into: Path) -> Path:
    """`apt-get download PACKAGE` into a folder; the .deb's path."""
    done = subprocess.run(["apt-get", "download", package], cwd=into, capture_output=True, text=True, check=False)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if done.returncode or not debs:
        raise UserInputError(
            f"apt-get download {package} failed (is a Debian mirror reachable and the package in "
            f"the sources list?): {done.stderr.strip()[-400:]}"
        )
    return debs[0]


def deb_version(deb: Path) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def unpack(deb: Path, into: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    return into


def member_bytes(root: Path, member: str, resources: dict) -> bytes:
    """A file of an unpacked package; `FILE.rcc#/inner/path` is a file inside a Qt resource."""
    outer, _, inner = member.partition("#")
    path = root / outer.lstrip("/")
    if not inner:
        return path.read_bytes()
    if path not in resources:
        resources[path] = dict(rcc_files(path.read_bytes()))
    return resources[path][inner]


def source_path(member: str) -> str:
    """The path a copyright file's patterns refer to: the resource's own path for rcc members."""
    return member.partition("#")[2] or member


# --- encoding ------------------------------------------------------------------------------------


def as_corpus_jpeg(data: bytes) -> tuple[bytes, str]:
    """(JPEG bytes, the transformation in words). JPEG keeps its bytes."""
    if data[:3] == b"\xff\xd8\xff":
        return data, "none (JPEG bytes kept)"
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        source_format = im.format
        im = im.convert("RGBA")
        transparent = im.getchannel("A").getextrema()[0] < 255
        flat = Image.new("RGBA", im.size, WHITE + (255,))
        flat.alpha_composite(im)
        buffer = io.BytesIO()
        flat.convert("RGB").save(
            buffer, "JPEG", quality=ENCODER["quality"], subsampling=2, optimize=ENCODER["optimize"]
        )
    encoded = (
        f"{source_format} -> JPEG quality {ENCODER['quality']}, {ENCODER['subsampling']}, "
        f"optimize={ENCODER['optimize']} (Pillow)"
    )
    steps = ["alpha composited on white" if transparent else None, encoded]
    return buffer.getvalue(), "; ".join(s for s in steps if s)


# --- the corpus ----------------------------------------------------------------------------------


def corpus_folder(info: dict, root: Path | None = None) -> Path:
    import PIL

    key = digest({"selection": info, "encoder": ENCODER, "pillow": PIL.__version__})[:16]
    return Path(root or cache_root()) / f"photos-large-{key}"


def fetch(info: dict | None = None, root: Path | None = None, *, say: Callable[[str], None] = print) -> Path:
    """Build the corpus (once) and return its list file (one image path a line, unlabeled)."""
    info = info or selection()
    folder = corpus_folder(info, root)
    list_file = folder / "photos.txt"
    if list_file.is_file():
        return list_file
    require_tools()
    by_package: dict[str, list[dict]] = {}
    for photo in info["photos"]:
        by_package.setdefault(photo["package"], []).append(photo)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records, skipped, versions = [], [], {}
    with tempfile.TemporaryDirectory(prefix="sysnoise-photos-") as tmp:
        for package, photos in sorted(by_package.items()):
            work = Path(tmp) / package
            work.mkdir()
            say(f"sysnoise: fetch-photos: apt-get download {package} ({len(photos)} photos)")
            deb = download(package, work)
            versions[package] = deb_version(deb)
            root_dir = unpack(deb, work / "root")
            copyright_text = (root_dir / "usr/share/doc" / package / "copyright").read_text(errors="replace")
            resources: dict = {}
            for photo in photos:
                record = add_photo(photo, root_dir, resources, copyright_text, folder / "images")
                record["version"] = versions[package]
                (records if "file" in record else skipped).append(record)
            shutil.rmtree(work)  # a large package's tree is not kept
    records.sort(key=lambda r: r["file"])
    atomic_write_text(
        folder / "manifest.json",
        json.dumps(
            {
                "selection_sha256": digest(info),
                "encoder": ENCODER,
                "packages": versions,
                "photos": records,
                "skipped": skipped,
            },
            indent=1,
        ),
    )
    atomic_write_text(
        list_file,
        "# photos-large: unlabeled real photographs (manifest.json: package, licence, "
        "transformation)\n" + "".join(f"images/{r['file']}\n" for r in records),
    )
    say(
        f"sysnoise: fetch-photos: {len(records)} photos in {folder}"
        + (f"; {len(skipped)} skipped (manifest.json)" if skipped else "")
    )
    return list_file


def add_photo(photo: dict, root_dir: Path, resources: dict, copyright_text: str, images: Path) -> dict:
    """Write one selected photo; its manifest record (or a skip record with the reason)."""
    base = {"id": photo["id"], "package": photo["package"], "member": photo["member"]}
    try:
        data = member_bytes(root_dir, photo["member"], resources)
    except (FileNotFoundError, KeyError):
        return {**base, "reason": "not in this version of the package"}
    if hashlib.sha256(data).hexdigest() != photo["sha256"]:
        return {**base, "reason": "bytes differ from the selection's sha256 (another package version)"}
    jpeg, transformation = as_corpus_jpeg(data)
    name = f"{photo['id']}.jpg"
    (images / name).write_bytes(jpeg)
    licence, licence_from = licence_for(copyright_text, source_path(photo["member"]))
    return {
        **base,
        "file": name,
        "source_sha256": photo["sha256"],
        "jpeg_sha256": hashlib.sha256(jpeg).hexdigest(),
        "transformation": transformation,
        "licence": licence,
        "licence_from": licence_from,
        **({"cutout": True} if photo.get("cutout") else {}),
    }


def materialise() -> Path:
    """The dataset entry: the cached corpus, fetched on first use."""
    return fetch()
