"""report.md, report.csv and report.html of a stored run whose numbers are known by construction
(see conftest: 20 labeled samples, so one sample is 5 points)."""

import base64
import csv
import io
import json
import re

import numpy as np
import pytest

from sysnoise.analysis.metric import decimals_for


@pytest.fixture(scope="module")
def results(stored_run):
    return json.loads((stored_run / "results.json").read_text())


@pytest.mark.parametrize("n, places", [(20, 0), (100, 0), (101, 1), (1000, 1), (5000, 2), (50000, 3), (10**7, 3)])
def test_decimals_follow_the_one_sample_resolution(n, places):
    assert decimals_for(n) == places


def test_the_known_deltas_reach_the_results(results):
    deltas = {v["id"]: v["delta"] for v in results["variants"]}
    assert deltas == pytest.approx(
        {
            "decoder/opencv": 0,
            "resize/opencv-nearest": 30,
            "resize/pillow-box": -5,
            "precision/fp16": 5,
            "channel-order/bgr": 10,
        }
    )
    steps = results["stepwise"]["steps"]
    assert [s["added_noise"] for s in steps] == ["resize", "precision", "decoder"]
    assert [s["delta"] for s in steps] == pytest.approx([30, 35, 35])
    assert results["deploy"]["total"]["delta"] == pytest.approx(35)


def test_markdown_has_the_paper_table_the_stepwise_table_and_no_spurious_decimals(stored_run):
    text = (stored_run / "report.md").read_text()
    # resize over its two options: mean (30 - 5) / 2 = 12.5 -> "12" at 0 decimals (half to even),
    # std (ddof=1) = |30 - -5| / sqrt(2) = 24.7 -> "25", max 30.
    row = next(line for line in text.splitlines() if line.startswith("| toy-net |"))
    assert row == "| toy-net | 80 | 0 | 12 ± 25 (max 30) | 5 | n/a | 35* |"  # 7 vs 0 discordant: p = 2/128
    assert "| resize | opencv-nearest | 50 | 30* | " in text  # McNemar 6 vs 0: p = 2/64
    assert "| resize | pillow-box | 85 | -5 | " in text
    stepwise = [line for line in text.splitlines() if re.match(r"\| \d \| \+", line)]
    assert [line.split(" | ")[1] for line in stepwise] == [
        "+resize = opencv-nearest",
        "+precision = fp16",
        "+decoder = opencv",
    ]
    assert "| resize | pillow-bilinear | opencv-nearest | 30* |" in text  # deployment attribution
    assert not re.search(r"\b\d+\.\d+\*? \|", row)  # nothing finer than the data supports in the summary
    assert "![resize/opencv-nearest on" in text and "figures/difference-1.png" in text


def test_csv_has_one_row_per_variant_with_unrounded_numbers(stored_run, results):
    rows = list(csv.DictReader(io.StringIO((stored_run / "report.csv").read_text())))
    assert rows[0]["kind"] == "reference" and float(rows[0]["value"]) == pytest.approx(80)
    kinds = [r["kind"] for r in rows[1:]]
    assert kinds == ["single"] * 5 + ["stepwise"] * 3 + ["deploy"] * 5
    by_id = {r["id"]: r for r in rows}
    nearest = by_id["resize/opencv-nearest"]
    assert float(nearest["delta"]) == pytest.approx(30)
    assert float(nearest["flip_rate"]) == pytest.approx(100 * 7 / 30)  # 6 labeled + 1 unlabeled of 30
    assert nearest["distinguishable_from_zero"] == "True" and int(nearest["correct_to_wrong"]) == 6
    assert float(by_id["combined/step2:+precision"]["delta"]) == pytest.approx(35)
    assert by_id["deploy/only:precision"]["changed"] == "precision: fp32 -> fp16"


def test_html_shows_every_noise_its_interval_a_difference_picture_and_a_flip(stored_run, results):
    page = (stored_run / "report.html").read_text()
    for noise in results["noises"]:
        assert f'data-noise="{noise["name"]}"' in page
    assert "n/a: ceil-mode does not apply" in page
    charts = re.findall(r'<figure class="noise" data-noise="([^"]+)"><svg', page)
    assert charts == ["decoder", "resize", "precision", "channel-order"]
    # the configuration error is shown apart: after its own heading, not in the summary table
    assert page.index('data-noise="channel-order"') > page.index('id="misconfiguration"')
    summary = page.split('id="summary"')[1].split("</table>")[0]
    assert "channel-order" not in summary and "35*</td>" in summary
    resize_chart = page.split('data-noise="resize"')[1].split("</figure>")[0]
    assert "opencv-nearest" in resize_chart and "pillow-box" in resize_chart  # options as text (not paths)
    assert "[20, 45]" in page or re.search(r"\[\d+, \d+\]", page)  # intervals printed beside the charts
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page)
    assert any(alt.startswith("pixel difference") for alt, _ in images)
    assert any(" under " in alt for alt, _ in images)  # a flip example
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<h2 id="stepwise">' in page and '<h2 id="deploy">' in page
    assert "&lt;b&gt;bird&lt;/b&gt;" in page and "<b>bird</b>" not in page  # names are escaped


def test_html_is_self_contained(stored_run):
    page = (stored_run / "report.html").read_text()
    # Every src/href is inline (data:) or an in-page anchor; the only URLs are SVG namespace names.
    for attribute in re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page):
        assert attribute.startswith(("data:", "#")), attribute
    assert not re.search(r"<(script|link|iframe)\b", page)
    assert not re.search(r"url\((?!#)", page)  # no CSS fetches
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


def test_difference_and_flip_pictures_are_what_they_say(stored_run, results):
    from PIL import Image

    figures = results["figures"]
    first = figures["differences"][0]
    assert first["variant"] == "resize/opencv-nearest" and first["max_abs"] > 0
    panel = np.asarray(Image.open(stored_run / first["file"]))
    assert panel.shape == (32, 3 * 32 + 2 * 6, 3)  # reference | variant | difference, 6 px gaps
    reference, variant, shown = panel[:, :32], panel[:, 38:70], panel[:, 76:]
    expected = np.clip(np.abs(reference.astype(int) - variant.astype(int)) * first["amplification"], 0, 255)
    np.testing.assert_array_equal(shown, expected)
    assert [f["kind"] for f in figures["flips"]][:1] == ["correct->wrong"]  # the most telling first
    flip = figures["flips"][0]
    assert flip["reference"]["name"] in ("cat", "dog", "<b>bird</b>")
    assert flip["reference"]["class"] != flip["prediction"]["class"]
    kinds = {f["kind"] for f in figures["flips"]}
    assert "wrong->correct" in kinds  # pillow-box fixed sample 17
    samples = [f["sample"] for f in figures["flips"]]
    assert len(samples) == len(set(samples))  # spread over different samples


def test_report_command_rerenders_from_stored_files_without_a_model(stored_run, tmp_path, monkeypatch):
    import shutil

    from sysnoise import cli, models
    from sysnoise.engine import execute

    copy = tmp_path / "copy"
    shutil.copytree(stored_run, copy)
    originals = {name: (copy / name).read_text() for name in ("report.md", "report.html", "report.csv")}
    for name in originals:
        (copy / name).unlink()

    def no_model(*args, **kwargs):
        raise AssertionError("sysnoise report must not run or load a model")

    monkeypatch.setattr(execute, "evaluate", no_model)
    monkeypatch.setattr(models, "load_model", no_model)
    assert cli.main(["report", str(copy)]) == 0
    for name, text in originals.items():
        assert (copy / name).read_text() == text  # deterministic: same results, same bytes


def test_report_command_names_a_bad_file(tmp_path, capsys):
    from sysnoise import cli

    (tmp_path / "results.json").write_text("{not json")
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "results.json: cannot read results" in capsys.readouterr().err


def test_without_labels_the_reports_measure_agreement_only(tmp_path):
    from .conftest import build_run

    results = build_run(tmp_path, labeled=0)
    assert all(v["delta"] is None for v in results["variants"])
    # greedy by flip rate: resize/opencv-nearest moves 7 of 30 samples, precision 2, decoder none
    assert [s["added_noise"] for s in results["stepwise"]["steps"]] == ["resize", "precision", "decoder"]
    text = (tmp_path / "report.md").read_text()
    assert "flip rate in % (no labels)" in text
    row = next(line for line in text.splitlines() if line.startswith("| toy-net |"))
    # flip rates: resize 7/30 = 23.3 and 1/30 = 3.3 -> mean 13.3, std 14.1; precision 2/30 = 6.7
    assert row == "| toy-net | - | 0 | 13 ± 14 (max 23) | 7 | n/a | 30 |"
    page = (tmp_path / "report.html").read_text()
    assert "agreement only" in page and "flips, % of samples" in page and "delta, points" not in page
    deploy = results["deploy"]
    assert deploy["total"]["flip_rate"] == pytest.approx(100 * 9 / 30)  # resize's 7 + precision's 2
