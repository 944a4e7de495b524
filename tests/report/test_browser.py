"""report.html in a real browser: headless Chromium opens the file with networking disabled, renders
it without console errors or broken images, fetches nothing, and a full-page screenshot is taken
(kept in $SYSNOISE_SCREENSHOTS when set, to look at)."""

import io
import os
from pathlib import Path

import numpy as np
import pytest

from . import browser

STATE = """
const box = el => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
return {
  images: [...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0})),
  noises: [...document.querySelectorAll('figure.noise')].map(f => f.dataset.noise),
  charts: [...document.querySelectorAll('figure svg')].map(box),
  resources: performance.getEntriesByType('resource').map(e => e.name),
  pageWidth: document.documentElement.scrollWidth,
  viewport: window.innerWidth,
  headings: [...document.querySelectorAll('h2')].map(h => h.id),
};
"""


def test_report_renders_in_headless_chromium(stored_run, tmp_path):
    from PIL import Image

    found = browser.find()
    if isinstance(found, str):
        pytest.skip(found)
    session = browser.Browser(*found)
    try:
        session.open((stored_run / "report.html").as_uri())
        state = session.script(STATE)
        console = session.console()
        shot = session.screenshot()
    finally:
        session.close()

    assert [entry for entry in console if entry["level"] == "SEVERE"] == []
    assert len(state["images"]) >= 2 and all(image["ok"] for image in state["images"]), state["images"]
    assert state["noises"] == ["decoder", "resize", "precision", "ceil-mode", "channel-order"]
    assert len(state["charts"]) >= 6  # 4 noises, the stepwise chart, the attribution chart
    assert all(width > 200 and height > 50 for width, height in state["charts"]), state["charts"]
    assert all(name.startswith("data:") for name in state["resources"]), state["resources"]
    assert state["pageWidth"] <= state["viewport"]  # nothing overflows sideways
    assert {
        "summary",
        "noises",
        "stepwise",
        "deploy",
        "differences",
        "flips",
        "misconfiguration",
        "environment",
    } <= set(state["headings"])

    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("L"))
    assert image.shape[0] > 1500 and image.std() > 10  # a long page with content, not a blank one
    (tmp_path / "report.png").write_bytes(shot)
    if os.environ.get("SYSNOISE_SCREENSHOTS"):
        folder = Path(os.environ["SYSNOISE_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.png").write_bytes(shot)
