"""Build the embedded evaluation text from The Devil's Dictionary (Ambrose Bierce, 1911; public
domain), as Debian's dict-devil package ships it (/usr/share/dictd/devil.dict.dz). Deterministic:
the same source file always gives the same two JSONL files. See README.md beside this file.

    apt-get download dict-devil && dpkg-deb -x dict-devil_*.deb x
    python src/sysnoise/zoo/text/build.py x/usr/share/dictd/devil.dict.dz
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
HEAD = re.compile(r"^[A-Z][A-Z'\- ]+, [a-z.]+\s")  # "BACKBITE, v.t.  To speak of ..."
FIRST_ENTRY = "ABASEMENT, n."
TARGET = re.compile(r"^[A-Za-z]{3,}$")
LASTWORD_WORDS = (25, 60)  # passage length in words, context plus target
TEXT_MIN_WORDS, TEXT_MAX_WORDS = 40, 80
EVERY = 10  # every tenth qualifying entry: the sets span the alphabet and the demo stays in minutes


def entries(text: str) -> list[str]:
    """The prose of each entry: blank-line blocks with an unindented line (verse is all indented)."""
    text = text[text.index(FIRST_ENTRY) :]
    out: list[list[str]] = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not any(line and not line[0].isspace() for line in lines):
            continue  # verse or an attribution
        if HEAD.match(lines[0]):
            out.append([])
        if out:
            out[-1].append(" ".join(line.strip() for line in lines))
    # underscores mark italics in the source; collapse the double spaces after full stops
    return [re.sub(r"\s+", " ", " ".join(parts).replace("_", "")).strip() for parts in out]


def sentences_upto(words: list[str], limit: int) -> list[str]:
    """The longest prefix of whole sentences with at most `limit` words."""
    ends = [i + 1 for i, w in enumerate(words[:limit]) if w.endswith((".", "!", "?"))]
    return words[: ends[-1]] if ends else []


def lastword_item(passage: str) -> dict | None:
    words = sentences_upto(passage.split(), LASTWORD_WORDS[1])
    if len(words) < LASTWORD_WORDS[0]:
        return None
    target = words[-1].rstrip(".!?\"')")
    if not TARGET.match(target):
        return None
    return {"text": " ".join(words[:-1] + [target])}


def text_item(passage: str) -> dict | None:
    words = sentences_upto(passage.split(), TEXT_MAX_WORDS)
    return {"text": " ".join(words)} if len(words) >= TEXT_MIN_WORDS else None


def build(source: Path) -> dict[str, list[dict]]:
    passages = entries(gzip.decompress(source.read_bytes()).decode("utf-8"))
    sets = {}
    for name, make in (("devil-lastword", lastword_item), ("devil-text", text_item)):
        items = [item for item in map(make, passages) if item]
        sets[name] = items[::EVERY]
    return sets


def main(source: str) -> None:
    for name, items in build(Path(source)).items():
        path = HERE / f"{name}.jsonl"
        path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
        print(f"{path}: {len(items)} items")


if __name__ == "__main__":
    main(sys.argv[1])
