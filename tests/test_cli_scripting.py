"""`sysnoise run` in a script or CI step: --fail-if exit codes, --json on stdout (validated against
the published schema), --limit, --quiet, --version."""

import json

import jsonschema
import numpy as np
import pytest
from PIL import Image

from sysnoise.cli import main
from sysnoise.gates import FAILED_GATE_EXIT
from sysnoise.schemas import summary_schema

from .analysis.test_combined_run import shufflenet_weights  # noqa: F401  (fixture)


@pytest.fixture
def setup(tmp_path, shufflenet_weights):  # noqa: F811
    rng = np.random.default_rng(3)
    lines = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(tmp_path / f"p{i}.png")
        lines.append(f"p{i}.png {i % 5}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "ref.yaml").write_text("input_size: 32\ncrop_pct: 1.0\n")
    base = [
        "run",
        "--model",
        "torchvision:shufflenet_v2_x0_5",
        "--weights",
        str(shufflenet_weights),
        "--data",
        str(tmp_path / "list.txt"),
        "--reference",
        str(tmp_path / "ref.yaml"),
        "--noise",
        "resize=opencv-area,pillow-nearest",
        "--noise",
        "decoder=opencv",
        "--workers",
        "0",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(base + ["--quiet"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    return base, results


def test_each_gate_form_sets_its_exit_code(setup, capsys):
    base, results = setup
    rows = {v["id"]: v for v in results["variants"]}
    worst_delta = max(v["delta"] for v in rows.values())
    worst_flip = max(v["flip_rate"] for v in rows.values())
    resize_max = next(n for n in results["noises"] if n["name"] == "resize")["summary"]["delta"]["max"]
    cases = [
        (f"delta>{worst_delta - 0.01}", FAILED_GATE_EXIT),
        (f"delta>{worst_delta + 0.01}", 0),
        (f"resize.max>{resize_max - 0.01}", FAILED_GATE_EXIT),
        (f"resize.max>={resize_max + 0.01}", 0),
        (f"flip>{worst_flip - 0.01}%", FAILED_GATE_EXIT),
        (f"flip>{worst_flip}%", 0),
        (f"decoder/opencv.flip>={rows['decoder/opencv']['flip_rate']}", FAILED_GATE_EXIT),
    ]
    for gate, code in cases:
        capsys.readouterr()
        assert main(base + ["--quiet", "--fail-if", gate]) == code, gate
        err = capsys.readouterr().err
        assert (f"gate failed: {gate}" in err) == (code == FAILED_GATE_EXIT)


@pytest.mark.parametrize(
    "gate, message",
    [
        ("resise.max>1", "resise"),
        ("crop.max>1", "not measured"),
        ("deploy.delta>0.3", "needs --deploy"),
        ("delta=1", "expected"),
    ],
)
def test_a_bad_gate_is_a_usage_error_before_work(setup, tmp_path, capsys, gate, message):
    base, _ = setup
    fresh = [a if a != str(tmp_path / "out") else str(tmp_path / "never") for a in base]
    assert main(fresh + ["--fail-if", gate]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "never" / "outputs.npz").exists()


def test_json_on_stdout_follows_the_schema_and_carries_the_gates(setup, capsys):
    base, results = setup
    capsys.readouterr()
    code = main(base + ["--json", "--no-progress", "--fail-if", "flip>=0"])
    out, err = capsys.readouterr()
    doc = json.loads(out)  # stdout is the JSON document alone
    jsonschema.Draft202012Validator(summary_schema()).validate(doc)
    assert code == FAILED_GATE_EXIT and doc["gates"]["failed"][0]["gate"] == "flip>=0"
    assert {v["id"]: v["delta_ci"] for v in doc["variants"]} == {v["id"]: v["delta_ci"] for v in results["variants"]}
    assert doc["reference"]["value"] == results["reference"]["top1"]
    assert "resize" in err  # the table went to stderr


def test_limit_is_recorded_and_named_in_the_report(setup, tmp_path):
    base, _ = setup
    limited = [a if a != str(tmp_path / "out") else str(tmp_path / "lim") for a in base]
    assert main(limited + ["--quiet", "--limit", "5"]) == 0
    results = json.loads((tmp_path / "lim" / "results.json").read_text())
    assert results["dataset"]["limit"] == {"n": 5, "of": 12, "seed": 0, "stratified_by": "first label"}
    assert results["reference"]["n"] == 5
    labels = np.load(tmp_path / "lim" / "outputs.npz")["labels"][:, 0]
    assert sorted(labels.tolist()) == [0, 1, 2, 3, 4]  # 5 labels, 5 samples: stratified means one of each
    assert "(--limit: 5 of 12 samples)" in (tmp_path / "lim" / "report.md").read_text()
    assert results["dataset"]["name"] == f"{tmp_path.name}/list.txt"


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("sysnoise 0.")


def test_the_ci_gate_example_gates_on_the_deployment(setup, tmp_path, shufflenet_weights):  # noqa: F811
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "examples" / "ci_gate.sh"
    (tmp_path / "deploy.yaml").write_text("input_size: 32\ncrop_pct: 1.0\nresize: opencv-nearest\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [
            "bash",
            str(script),
            "torchvision:shufflenet_v2_x0_5",
            str(shufflenet_weights),
            str(tmp_path / "list.txt"),
            str(tmp_path / "deploy.yaml"),
            str(tmp_path / "gate"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    summary = json.loads((tmp_path / "gate.summary.json").read_text())
    failed = {g["gate"] for g in summary["gates"]["failed"]}
    assert done.returncode == (FAILED_GATE_EXIT if failed else 0), done.stdout + done.stderr[-2000:]
    # the gates the script declares, recomputed from the summary by hand
    expected = set()
    if summary["deploy"]["delta"] > 0.5:
        expected.add("deploy.delta>0.5")
    resize = next(n for n in summary["noises"] if n["name"] == "resize")["summary"]["delta"]["max"]
    if resize > 1:
        expected.add("resize.max>1")
    if any(v["flip_rate"] > 5 for v in summary["variants"]):
        expected.add("flip>5%")
    assert failed == expected
