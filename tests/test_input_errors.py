"""A user's mistake ends before any work with `sysnoise: error: FILE[:line]: what, how to fix` and
exit code 2, never a traceback (issue 17 s.2, issue 18 s.5); other tools' spellings in a pipeline
file are translated or refused with sysnoise's; a report renders whatever the data was."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sysnoise import api, measure
from sysnoise.cli import main
from sysnoise.errors import UserInputError
from sysnoise.pipeline.spec import Pipeline
from tests.conftest import write_jpeg


def refused(argv: list[str], capsys) -> str:
    """Run the CLI; it must exit 2 with one `sysnoise: error:` line and no traceback: the message."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("sysnoise: error: ")]
    assert len(lines) == 1, err
    return lines[0][len("sysnoise: error: ") :]


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    for i in range(2):
        write_jpeg(folder / f"img{i}.jpg", np.full((40, 50, 3), 60 * i, np.uint8))
    return folder


def run_argv(data: Path, out: Path, *extra: str, model: str = "efficientnet_lite0") -> list[str]:
    return ["run", "--model", model, "--data", str(data), "--out", str(out), "--no-progress", "--workers", "0", *extra]


# --- issue 17 s.2: checked before the first decode -------------------------------------------------------


def test_an_unknown_resize_in_the_reference_stops_before_any_forward_pass(tmp_path, images, capsys, monkeypatch):
    passes = []
    monkeypatch.setattr(measure, "evaluate", lambda *a, **k: passes.append(1))  # the engine pass: never reached
    reference = tmp_path / "ref.yaml"
    reference.write_text("decoder: pillow\nresize: bicubic\n")
    started = time.perf_counter()
    message = refused(run_argv(images, tmp_path / "out", "--reference", str(reference)), capsys)
    assert time.perf_counter() - started < 10
    assert message == (
        f"{reference}:2: resize: 'bicubic' is not a resize option; did you mean pillow-bicubic, "
        "opencv-bicubic? (`sysnoise list` describes each)"
    )
    assert passes == [] and not (tmp_path / "out").exists()


class Raises(torch.nn.Module):
    def forward(self, x):
        raise AssertionError("a forward pass ran")


def test_the_python_api_checks_a_wrapped_model_s_reference_before_its_forward(images, tmp_path):
    with pytest.raises(UserInputError, match="resize: 'bicubic' is not a resize option"):
        api.run(
            Raises(),
            images,
            reference=Pipeline(resize="bicubic"),
            noises=["decoder=opencv"],
            out=tmp_path / "out",
            figures=False,
        )


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "decoder: pillow\nresize: !!python/object/apply:os.system ['true']\n",
            ":2: not a YAML/JSON pipeline (could not determine a constructor for the tag",
        ),
        ("decoder: pillow\ndecodr: opencv\n", ":2: unknown pipeline field 'decodr'; did you mean decoder?"),
        ("input_size: 0\n", ":1: input_size: must be a positive number of pixels, got 0"),
        ("std: [0, 0, 0]\n", ":1: std: must be positive (it divides), got [0.0, 0.0, 0.0]"),
        ("crop_pct: .nan\n", ":1: crop_pct: must be in (0, 1]"),
        ("mean: [1, .inf, 2]\n", ":1: mean: needs three finite values"),
        ("input_size: [1, 2]\n", ":1: input_size: [1, 2]: sysnoise inputs are square"),
        ("mean: 5\n", ":1: mean: should be three numbers, got 5"),
        ("input_size: 224.5\n", ":1: input_size: should be an integer, got 224.5"),
        ("operators: maxpool-ceil\n", ":1: operators: should be a list of names, got 'maxpool-ceil'"),
        ("resize: pillow-bicubic\ncrop: center\n", ":2: crop: 'center' is not a crop option"),
        ("- resize\n", ": expected a mapping of pipeline fields"),
        ("input_size: " + "7" * 5000 + "\n", ": a number too long to read (Exceeds the limit (4300 digits)"),
        ("mean: " + "[" * 50000 + "]" * 50000 + "\n", ": nested too deeply to read"),
    ],
)
@pytest.mark.parametrize("flag", ["--reference", "--deploy"])
def test_a_bad_pipeline_file_names_its_line_and_field(text, expected, flag, tmp_path, images, capsys):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    message = refused(run_argv(images, tmp_path / "out", flag, str(path)), capsys)
    assert message.startswith(str(path)) and expected in message, message


def test_a_missing_reference_file_is_named(tmp_path, images, capsys):
    message = refused(run_argv(images, tmp_path / "out", "--reference", str(tmp_path / "none.yaml")), capsys)
    assert message == f"{tmp_path / 'none.yaml'}: cannot read pipeline file: No such file or directory"


def test_noise_and_stepwise_options_get_the_nearest_names(tmp_path, images, capsys):
    message = refused(run_argv(images, tmp_path / "out", "--noise", "resize=bicubic"), capsys)
    assert "'bicubic' is not an option of noise 'resize'; did you mean pillow-bicubic, opencv-bicubic?" in message
    message = refused(
        run_argv(images, tmp_path / "out", "--noise", "resize", "--stepwise", "resize=opencv-aera"), capsys
    )
    assert "'opencv-aera' is not an option of noise 'resize'; did you mean opencv-area" in message
    message = refused(run_argv(images, tmp_path / "out", "--noise", f"stored={tmp_path / 'nothing'}"), capsys)
    assert "is not a folder" in message


def test_pipelines_spelled_on_the_command_line_are_checked(tmp_path, images, capsys):
    message = refused(["diff", "reference", "operators=maxpool-cel", "--images", str(images)], capsys)
    assert message == (
        "pipeline 'operators=maxpool-cel': operators: 'maxpool-cel' is not an operator option; "
        "did you mean maxpool-ceil, avgpool-ceil? (`sysnoise list` describes each)"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("colour: nv12\n")
    message = refused(["diff", "reference", str(bad), "--images", str(images)], capsys)
    assert message.startswith(f"{bad}:1: colour: 'nv12' is not a colour option; did you mean nv12-")


def test_a_device_this_machine_lacks_is_refused_at_once(tmp_path, images, capsys):
    message = refused(run_argv(images, tmp_path / "out", "--device", "gpu"), capsys)
    assert message.startswith("--device 'gpu' is not a torch device")
    if not torch.cuda.is_available():
        message = refused(run_argv(images, tmp_path / "out", "--device", "cuda"), capsys)
        assert message.startswith("--device cuda: no CUDA GPU is visible here") and "--device cpu" in message
    else:
        message = refused(run_argv(images, tmp_path / "out", "--device", f"cuda:{torch.cuda.device_count()}"), capsys)
        assert "CUDA GPU(s)" in message


# --- issue 17 s.1: other tools' spellings in --reference ---------------------------------------------------


def test_timm_and_hugging_face_spellings_are_translated(tmp_path):
    from sysnoise.validate import load_pipeline

    path = tmp_path / "timm.yaml"
    path.write_text(
        "interpolation: bicubic\ncrop_mode: squash\ncrop_pct: 0.95\ninput_size: [3, 240, 240]\n"
        "image_mean: [0.485, 0.456, 0.406]\nimage_std: [0.229, 0.224, 0.225]\n"
    )
    with pytest.warns(UserWarning, match=r"image_mean \[0.485, 0.456, 0.406\] as mean \[123.675, 116.28, 103.53\]"):
        pipeline = load_pipeline(path)
    assert pipeline.replace(mean=(0, 0, 0), std=(1, 1, 1)) == Pipeline(
        resize="pillow-bicubic", crop="square-resize-crop", crop_pct=0.95, input_size=240, mean=(0, 0, 0), std=(1, 1, 1)
    )
    assert pipeline.mean == pytest.approx([0.485 * 255, 0.456 * 255, 0.406 * 255], abs=1e-6)
    assert pipeline.std == pytest.approx([0.229 * 255, 0.224 * 255, 0.225 * 255], abs=1e-6)
    path.write_text(f"resample: {int(Image.Resampling.LANCZOS)}\n")  # Hugging Face stores PIL's enum value
    assert load_pipeline(path).resize == "pillow-lanczos"
    path.write_text("mean: [0, 0, 0]\nstd: [1, 1, 1]\n")  # raw 0-255 pixels: the same in both units, kept
    assert load_pipeline(path).std == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "mean: [0.485, 0.456, 0.406]\nstd: [0.229, 0.224, 0.225]\n",
            ":1: mean: [0.485, 0.456, 0.406] looks like 0-1 units (timm, torchvision); sysnoise's mean and std are in "
            "0-255 pixel units: write mean: [123.675, 116.28, 103.53]; std: [58.395, 57.12, 57.375] (x255)",
        ),
        ("std: [0.5, 0.5, 0.5]\n", ":1: std: [0.5, 0.5, 0.5] looks like 0-1 units"),
        (
            "image_mean: [124, 116, 104]\n",
            ":1: image_mean: [124, 116, 104]: Hugging Face's image_mean is three values "
            "in 0-1 units; for 0-255 pixel units write mean",
        ),
        ("interpolation: cubic\n", ":1: interpolation: 'cubic' is not an interpolation sysnoise knows"),
        ("crop_mode: border\n", ":1: crop_mode: timm's crop_mode 'border' has no catalogue crop"),
        ("crop_mode: [center]\n", ":1: crop_mode: timm's crop_mode ['center'] has no catalogue crop"),
        ("resample: [3]\n", ":1: resample: [3] is not an interpolation sysnoise knows"),
        ("resample: 3\nresize: opencv-area\n", ":1: resample: gives resize a second time"),
        (
            "size: {shortest_edge: 256}\n",
            ":1: size: not a sysnoise field (Hugging Face's resize size: write input_size",
        ),
    ],
)
def test_other_tools_spellings_that_cannot_be_read_are_refused_with_sysnoise_s(
    text, expected, tmp_path, images, capsys
):
    path = tmp_path / "ref.yaml"
    path.write_text(text)
    message = refused(run_argv(images, tmp_path / "out", "--reference", str(path)), capsys)
    assert message.startswith(str(path)) and expected in message, message


# --- issue 18 s.5: data, weights and folders ----------------------------------------------------------------


def test_list_file_format_paths_with_hash_and_spaces(tmp_path):
    from sysnoise.tasks.classification import list_line, read_dataset

    for name in ("hash#1.jpg", "photo 2.jpg", "plain.jpg"):
        write_jpeg(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    listing = tmp_path / "val.txt"
    listing.write_text("# a comment line\nhash#1.jpg 4\nphoto 2.jpg\t3\nplain.jpg\n  # indented comment\n")
    dataset = read_dataset(listing)
    assert [(s.id, s.labels) for s in dataset.samples] == [
        ("hash#1.jpg", (4,)),
        ("photo 2.jpg", (3,)),
        ("plain.jpg", ()),
    ]
    assert list_line("photo 2.jpg", (3,)) == "photo 2.jpg\t3" and list_line("a.jpg", (1, 2)) == "a.jpg 1,2"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("photo 2.jpg 3", ":2: 3 space-separated fields; a path with spaces needs a tab"),
        ("a.jpg 3 # the cat", ":2: 5 space-separated fields"),
        ("photo 2.jpg", ":2: labels '2.jpg' are not class indices joined by commas"),
        ("a\0b.jpg 1", ":2: NUL byte in the line"),
        ("a.jpg\t1\t2", ":2: 2 tabs; write the 2 fields with one tab between each"),
    ],
)
def test_a_list_file_line_that_does_not_parse_is_named(line, expected, tmp_path, capsys):
    write_jpeg(tmp_path / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    listing = tmp_path / "val.txt"
    listing.write_text(f"a.jpg 1\n{line}\n")
    message = refused(run_argv(listing, tmp_path / "out"), capsys)
    assert message.startswith(str(listing)) and expected in message, message


def test_weights_that_are_not_safetensors_or_do_not_fit_are_named(tmp_path, images, capsys):
    import torchvision
    from safetensors.torch import save_file

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\xff" * 64)
    message = refused(
        run_argv(images, tmp_path / "out", "--weights", str(broken), model="torchvision:resnet18"), capsys
    )
    assert message.startswith(f"{broken}: not a readable .safetensors file")
    state = torchvision.models.resnet18(num_classes=10).state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)  # a 3x3 stem where resnet18 has 7x7
    wrong = tmp_path / "wrong.safetensors"
    save_file(state, str(wrong))
    message = refused(run_argv(images, tmp_path / "out", "--weights", str(wrong), model="torchvision:resnet18"), capsys)
    assert message.startswith(
        f"{wrong}: weights do not fit the architecture: 1 tensor(s) of another shape, "
        "e.g. conv1.weight (64, 3, 3, 3) where the model has (64, 3, 7, 7)"
    )


def test_an_out_folder_that_cannot_be_written_is_refused_before_the_model_loads(tmp_path, images, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    missing_weights = ["--weights", str(tmp_path / "none.pth")]  # loading the model would fail: it never does
    message = refused(run_argv(images, afile, *missing_weights, model="torchvision:resnet18"), capsys)
    assert message == f"--out {afile}: is a file; give a folder for the results"
    message = refused(run_argv(images, afile / "run", *missing_weights, model="torchvision:resnet18"), capsys)
    assert message == f"--out {afile / 'run'}: is inside {afile}, which is a file; give a folder for the results"
    if Path("/proc/1").is_dir():  # a folder nobody can create entries in, even root
        message = refused(
            run_argv(images, Path("/proc/1/sysnoise-out"), *missing_weights, model="torchvision:resnet18"), capsys
        )
        assert message.startswith("--out /proc/1/sysnoise-out: cannot write there")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '{"goal": "a", "sol1": "b", "sol2": "c", "label": ' + "1" * 5000 + "}",
            ":2: a number in the JSON is too long",
        ),
        ('{"text": ' + "[" * 100000 + "]" * 100000 + "}", ":2: JSON nested too deeply"),
        ('{"goal": "a", ', ":2: not valid JSON"),
    ],
)
def test_jsonl_is_checked_before_the_model_loads(text, expected, tmp_path, capsys):
    data = tmp_path / "items.jsonl"
    data.write_text('{"goal": "a", "sol1": "b", "sol2": "c", "label": 0}\n' + text + "\n")
    # no such model: reading the data first is what makes the error about the data
    message = refused(
        [
            "run",
            "--task",
            "language",
            "--model",
            str(tmp_path / "no-model"),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
        capsys,
    )
    assert message.startswith(str(data)) and expected in message, message


def test_decoder_adapters_give_per_file_reasons():
    from sysnoise.errors import DecodeError
    from sysnoise.pipeline.decode import decode

    frames = [Image.fromarray(np.full((20, 30, 3), 60 * i, np.uint8)) for i in range(3)]
    animated, icon = io.BytesIO(), io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:])
    frames[0].save(icon, "ICO")
    with pytest.raises(DecodeError, match=r"torchvision returned 4-d frames \(3, 3, 20, 30\) \(an animated image\)"):
        decode("torchvision", animated.getvalue())
    with pytest.raises(DecodeError, match="FFmpeg has no decoder for this file's format"):
        decode("ffmpeg", icon.getvalue())


# --- reports render whatever the data was --------------------------------------------------------------------


@pytest.fixture(scope="module")
def unreadable_class_folders(tmp_path_factory):
    """good/ and bad/ holding files no decoder reads, one with a name that is not UTF-8, run with a
    1000-class model: every sample is skipped."""
    root = tmp_path_factory.mktemp("classes")
    for folder in ("good", "bad"):
        (root / folder).mkdir()
        (root / folder / "x.jpg").write_bytes(b"not an image")
    with open(os.path.join(os.fsencode(root / "bad"), b"caf\xe9.jpg"), "wb") as handle:
        handle.write(b"not an image either")
    out = root / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(run_argv(root, out, "--noise", "resize=opencv-area,opencv-nearest"))
    return code, out, [str(w.message) for w in caught]


def test_class_folders_that_cannot_be_the_model_s_classes_are_warned_about(unreadable_class_folders):
    _, _, caught = unreadable_class_folders
    assert any(
        "2 class folders (bad, good) are scored as the model's classes 0..1" in m and "the model has 1000 classes" in m
        for m in caught
    ), caught


def test_a_run_with_no_readable_sample_reports_no_evaluable_samples(unreadable_class_folders):
    code, out, _ = unreadable_class_folders
    assert code == 0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "No evaluable samples: all 3 samples were skipped" in report
    assert "No evaluable samples" in (out / "report.html").read_text(encoding="utf-8")
    assert "- `bad/caf\\xe9.jpg`: " in report  # the name's undecodable byte escaped, the report written
    assert "bad/caf\\xe9.jpg" in (out / "report.html").read_text(encoding="utf-8")


def test_file_names_are_shown_escaped():
    from sysnoise.report.markdown import fmt_ci, shown

    assert shown(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    assert shown("a\nb\x1b.jpg") == "a\\nb\\x1b.jpg" and shown("café 1.jpg") == "café 1.jpg"
    assert fmt_ci([None, None], 2) == "-" and fmt_ci([1, 2], 1) == "[1.0, 2.0]"


def test_the_cli_prints_sysnoise_s_own_warnings_as_one_line(tmp_path, images):
    path = tmp_path / "ref.yaml"
    path.write_text("image_mean: [0.5, 0.5, 0.5]\nimage_std: [0.5, 0.5, 0.5]\nresize: bicubic\n")
    done = subprocess.run(
        [sys.executable, "-m", "sysnoise", *run_argv(images, tmp_path / "out", "--reference", str(path))],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "sysnoise: warning: read 0-1 units x255 as sysnoise's 0-255 pixel units: image_mean [0.5, 0.5, 0.5] as "
        "mean [127.5, 127.5, 127.5]; image_std [0.5, 0.5, 0.5] as std [127.5, 127.5, 127.5]\n"
        f"sysnoise: error: {path}:3: resize: 'bicubic' is not a resize option; did you mean pillow-bicubic, "
        "opencv-bicubic? (`sysnoise list` describes each)\n"
    )


def test_json_input_names_the_line_of_a_syntax_error():
    from sysnoise.json_input import loads

    text = '{"a": 1,\n "b": ,\n "c": 2}'
    with pytest.raises(json.JSONDecodeError) as direct:
        json.loads(text)
    with pytest.raises(UserInputError) as ours:
        loads(text, "f.json")
    assert (
        str(ours.value)
        == f"f.json:{direct.value.lineno}: not valid JSON ({direct.value.msg} at column {direct.value.colno})"
        and direct.value.lineno == 2
    )
    assert loads(json.dumps({"a": [1, 2]}), "f.json") == {"a": [1, 2]}
