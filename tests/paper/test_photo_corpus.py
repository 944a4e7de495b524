"""photos-large: the Qt resource reader, licences from copyright files, the encoding, and a real
fetch of a small selection (palapeli-data, 2 MB) where Debian's package tools and a mirror answer."""

import hashlib
import io
import json
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image

from sysnoise.errors import UserInputError
from sysnoise.zoo import photo_corpus
from sysnoise.zoo.qt_resources import rcc_files


def _rcc_v1(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A minimal rcc (version 1) written from Qt's format description: root dir -> 'res' dir -> files."""
    names, data, name_offsets = b"", b"", {}

    def add_name(name):
        nonlocal names
        name_offsets[name] = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")

    entries = []
    for name, (payload, compress) in files.items():
        add_name(name)
        stored = struct.pack(">I", len(payload)) + zlib.compress(payload) if compress else payload
        entries.append((name, len(data), 1 if compress else 0))
        data += struct.pack(">I", len(stored)) + stored
    add_name("res")
    tree = struct.pack(">IHII", 0, 2, 1, 1)  # root: a directory with one child at node 1
    tree += struct.pack(">IHII", name_offsets["res"], 2, len(entries), 2)
    for name, offset, flags in entries:
        tree += struct.pack(">IHHHI", name_offsets[name], flags, 0, 0, offset)
    header_size = 20
    tree_at, data_at = header_size, header_size + len(tree)
    names_at = data_at + len(data)
    return b"qres" + struct.pack(">4I", 1, tree_at, data_at, names_at) + tree + data + names


def test_rcc_reader_returns_plain_and_compressed_files_with_their_paths():
    blob = _rcc_v1({"a.webp": (b"RIFF1234", False), "b.png": (b"\x89PNG" + bytes(range(200)), True)})
    assert dict(rcc_files(blob)) == {"/res/a.webp": b"RIFF1234", "/res/b.png": b"\x89PNG" + bytes(range(200))}


def test_rcc_reader_refuses_other_files():
    with pytest.raises(ValueError, match="qres"):
        list(rcc_files(b"PK\x03\x04" + bytes(40)))


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files: src/activities/erase/resource/*
       src/activities/other/*.webp
Copyright: a photographer
License: CC-BY-SA-4.0

Files: debian/*
License: GPL-2+
"""


@pytest.mark.parametrize(
    "path, licence",
    [
        ("/gcompris/src/activities/erase/resource/alpaca.webp", "CC-BY-SA-4.0"),  # a tail matches the stanza
        ("/gcompris/src/activities/other/x.webp", "CC-BY-SA-4.0"),  # second pattern of the list
        ("/gcompris/src/activities/other/x.png", "GPL-2+"),  # only Files: * matches
        ("/usr/share/app/photo.jpg", "GPL-2+"),
    ],
)
def test_licence_is_the_last_matching_dep5_stanza(path, licence):
    assert photo_corpus.licence_for(COPYRIGHT, path)[0] == licence


def test_unstructured_copyright_file_gives_its_licence_sentence():
    text = "This package was debianized by X.\n\n    and is licensed under the GPL, see below.\n"
    licence, how = photo_corpus.licence_for(text, "/usr/share/x/demo/a.jpg")
    assert licence == "package-wide: and is licensed under the GPL, see below." and how == "unstructured copyright file"


def test_jpeg_keeps_its_bytes_and_transparent_png_is_composited_on_white():
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buffer, "JPEG")
    assert photo_corpus.as_corpus_jpeg(buffer.getvalue()) == (buffer.getvalue(), "none (JPEG bytes kept)")

    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, :16] = (200, 20, 20, 255)  # opaque red left half, fully transparent (black) right half
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    jpeg, how = photo_corpus.as_corpus_jpeg(buffer.getvalue())
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)
    assert jpeg[:3] == b"\xff\xd8\xff" and how.startswith("alpha composited on white; PNG -> JPEG quality 90")
    assert np.abs(decoded[8, 4] - (200, 20, 20)).max() < 12  # JPEG error only
    assert np.abs(decoded[8, 28] - 255).max() < 6  # transparent -> white, not black


def test_missing_package_tools_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(UserInputError, match="apt-get, dpkg-deb not found"):
        photo_corpus.fetch({"photos": [{"id": "x", "package": "p", "member": "/a.jpg", "sha256": "0"}]}, tmp_path)


def test_shipped_selection_names_at_least_500_distinct_photos():
    photos = photo_corpus.selection()["photos"]
    assert len(photos) >= 500
    assert len({p["id"] for p in photos}) == len(photos) == len({p["sha256"] for p in photos})


def _debian_mirror_answers() -> bool:
    if photo_corpus.missing_tools():
        return False
    done = subprocess.run(
        ["apt-get", "download", "--print-uris", "palapeli-data"], capture_output=True, text=True, check=False
    )
    return done.returncode == 0


@pytest.mark.slow
def test_fetch_small_selection_from_debian(tmp_path):
    if photo_corpus.missing_tools():
        pytest.skip(
            f"no Debian package tools here ({', '.join(photo_corpus.missing_tools())}): fetch-photos needs them"
        )
    if not _debian_mirror_answers():
        pytest.skip("apt-get cannot reach a Debian mirror with palapeli-data")
    chosen = [p for p in photo_corpus.selection()["photos"] if p["package"] == "palapeli-data"]
    chosen.append({**chosen[0], "id": "tampered", "sha256": "0" * 64})  # a changed file is skipped, not taken
    list_file = photo_corpus.fetch({"photos": chosen}, tmp_path, say=lambda line: None)
    manifest = json.loads((list_file.parent / "manifest.json").read_text())
    lines = [line for line in list_file.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == len(chosen) - 1 == 5
    assert [s["id"] for s in manifest["skipped"]] == ["tampered"]
    for record, photo in zip(manifest["photos"], sorted(chosen[:-1], key=lambda p: p["id"])):
        data = (list_file.parent / "images" / record["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == photo["sha256"]  # JPEG source: the package's own bytes
        assert record["licence"] == "GPL-2+"  # palapeli's copyright: Files: * (read by hand)
        assert record["transformation"] == "none (JPEG bytes kept)"
    assert photo_corpus.fetch({"photos": chosen}, tmp_path, say=None) == list_file  # cached: no second download


LOMIRI = """Files: *
License: GPL-3

Files: 16.04/Bridge_by_Sander_Klootwijk.jpg
License: CC-BY-SA-4.0

Files: src/activities/erase/resource/bear001.jpg
License: CC-BY-2.0
"""


@pytest.mark.parametrize(
    "path, licence, how",
    [
        ("/usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0", "same file name"),
        ("/gcompris/src/activities/erase/resource/bear001.webp", "CC-BY-2.0", "same path, other extension"),
        ("/gcompris/src/activities/other/bear001.webp", "GPL-3", "pattern"),  # another folder, other extension: no
    ],
)
def test_file_specific_stanzas_match_installed_and_converted_files(path, licence, how):
    found, found_how = photo_corpus.licence_for(LOMIRI, path)
    assert found == licence and found_how.endswith(f"({how})")


def test_cli_says_what_is_missing_and_exits_2(monkeypatch, tmp_path, capsys):
    from sysnoise.cli import main

    monkeypatch.setattr(shutil, "which", lambda tool: None)
    assert main(["fetch-photos", "--cache", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sysnoise: error: fetch-photos needs Debian's package tools (apt-get, dpkg-deb not found)")
