"""`sysnoise diff` (stage statistics, first divergent stage, pictures, device matching) and
`sysnoise generate` (noised copies evaluated back as stored variants)."""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from sysnoise import api, diffing
from sysnoise.cli import main
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.outputs import RunOutputs
from sysnoise.errors import UserInputError
from sysnoise.models import wrap_module
from sysnoise.pipeline import stored
from sysnoise.pipeline.preprocess import pixels, tensors
from sysnoise.pipeline.spec import Pipeline
from sysnoise.tasks.classification import read_dataset

REFERENCE = Pipeline(input_size=32, crop_pct=0.875)


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
    )


@pytest.fixture
def samples(gradient_images):
    return read_dataset(gradient_images[0].parent).samples


# --- pipeline spellings ---


def test_resolve_pipeline_spellings(tmp_path):
    assert diffing.resolve_pipeline("reference", REFERENCE) == REFERENCE
    assert diffing.resolve_pipeline("decoder=ffmpeg", REFERENCE) == REFERENCE.replace(decoder="ffmpeg")
    assert diffing.resolve_pipeline("opencv-area", REFERENCE) == REFERENCE.replace(resize="opencv-area")
    combined = diffing.resolve_pipeline("decoder=opencv+squash+input_size=48", REFERENCE)
    assert combined == REFERENCE.replace(decoder="opencv", crop="squash", input_size=48)
    assert diffing.resolve_pipeline("mean=1,2,3", REFERENCE).mean == (1.0, 2.0, 3.0)
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump({"resize": "opencv-bilinear"}))
    assert diffing.resolve_pipeline(str(path), REFERENCE) == REFERENCE.replace(resize="opencv-bilinear")
    assert diffing.resolve_pipeline("stored=" + str(tmp_path), REFERENCE).decoder == stored.decoder_name(tmp_path)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("decoder=nope", "no option"),
        ("nope", "cannot tell"),
        ("colour_space=x", "neither a noise"),
        ("input_size=big", "bad input_size"),
    ],
)
def test_resolve_pipeline_errors_are_clear(spec, message):
    with pytest.raises(UserInputError, match=message):
        diffing.resolve_pipeline(spec, REFERENCE)


# --- statistics ---


def test_compare_on_a_hand_computed_case():
    a = np.zeros((2, 5, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (10, 0, 0)
    stats = diffing.compare(a, b)
    mse = 100 / 30  # one value of 30 differs by 10
    assert stats["max_abs"] == 10 and stats["mean_abs"] == pytest.approx(10 / 30)
    assert stats["changed_pct"] == pytest.approx(10.0)  # one pixel of ten
    assert stats["psnr_db"] == pytest.approx(10 * math.log10(255**2 / mse))
    assert diffing.compare(a, a)["identical"] and diffing.compare(a, a)["psnr_db"] is None
    assert not diffing.compare(a, np.zeros((5, 2, 3), np.uint8))["comparable"]


def test_identical_pipelines_never_diverge(samples):
    result = diffing.diff_pipelines(REFERENCE, REFERENCE, samples)
    assert result["first_divergent_stage"] is None and result["first_divergent_stage_by_configuration"] is None
    assert all(s["identical_pct"] == 100 for s in result["summary"].values())


def test_a_resize_change_diverges_at_geometry_not_before(samples, tmp_path):
    b = REFERENCE.replace(resize="opencv-nearest")
    result = diffing.diff_pipelines(REFERENCE, b, samples, out=tmp_path)
    assert result["first_divergent_stage"] == "geometry"
    assert result["summary"]["decode"]["identical_pct"] == 100
    assert result["summary"]["geometry"]["max_abs"] > 0 and result["summary"]["geometry"]["psnr_db"] > 10
    assert result["changed_fields"] == {"resize": ["pillow-bilinear", "opencv-nearest"]}
    row = result["images"][0]
    picture = np.asarray(Image.open(row["picture"]["path"]))
    assert picture.shape == (32, 3 * 32 + 8, 3)  # a | b | amplified difference
    expected = pixels(samples[0].path.read_bytes(), [b])[b.prefix("geometry")]
    np.testing.assert_array_equal(picture[:, 36:68], expected)


def test_a_decoder_change_diverges_at_decode(samples):
    result = diffing.diff_pipelines(REFERENCE, REFERENCE.replace(decoder="ffmpeg"), samples)
    assert result["first_divergent_stage"] == "decode"
    assert 0 < result["summary"]["decode"]["max_abs"] <= 60


def test_cli_diff_writes_json_and_pictures(gradient_images, tmp_path, capsys):
    out = tmp_path / "diff"
    code = main(["diff", "reference", "colour=nv12-int", "--images", str(gradient_images[0].parent), "--out", str(out)])
    assert code == 0
    assert "first divergent stage" in capsys.readouterr().out
    result = json.loads((out / "diff.json").read_text())
    assert result["first_divergent_stage"] == "colour"
    assert len(list((out / "pictures").glob("*.png"))) == len(gradient_images)


def test_cli_diff_needs_two_pipelines(gradient_images, capsys):
    assert main(["diff", "reference", "--images", str(gradient_images[0].parent)]) == 2
    assert "two pipelines" in capsys.readouterr().err


# --- generate and stored variants ---


def test_generate_writes_lossless_pixels_a_list_and_a_manifest(samples, tmp_path):
    pipeline = REFERENCE.replace(decoder="ffmpeg")
    (samples[0].path.parent / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    samples = [s for s in read_dataset(samples[0].path.parent).samples if s.id != "broken.jpg"]
    manifest = api.generate(
        samples[0].path.parent, tmp_path / "gen", pipeline="decoder=ffmpeg", reference=_reference_file(tmp_path)
    )
    assert manifest["n_written"] == 3 and [f["id"] for f in manifest["failures"]] == ["broken.jpg"]
    assert manifest["stage"] == "geometry" and manifest["pipeline"] == pipeline.to_dict()
    for sample in samples:
        written = np.asarray(Image.open(tmp_path / "gen" / stored.file_name(sample.id, "png")))
        np.testing.assert_array_equal(
            written, pixels(sample.path.read_bytes(), [pipeline])[pipeline.prefix("geometry")]
        )
    listed = [
        line.split()[0] for line in (tmp_path / "gen" / "list.txt").read_text().splitlines() if not line.startswith("#")
    ]
    assert listed == [stored.file_name(s.id, "png") for s in samples]


def _reference_file(tmp_path):
    path = tmp_path / "reference.yaml"
    path.write_text(REFERENCE.to_yaml())
    return path


def test_generate_normalise_stage_as_npy(samples, tmp_path):
    from sysnoise.generate import generate

    generate(samples, REFERENCE, tmp_path / "t", fmt="npy", stage="normalise")
    array = np.load(tmp_path / "t" / stored.file_name(samples[0].id, "npy"))
    np.testing.assert_array_equal(
        array, tensors(samples[0].path.read_bytes(), [REFERENCE])[REFERENCE.prefix("normalise")]
    )
    with pytest.raises(UserInputError, match="npy"):
        generate(samples, REFERENCE, tmp_path / "u", fmt="png", stage="normalise")


def _run(data, noises, out):
    return api.run(
        wrap_module(tiny_model(), reference=REFERENCE),
        data,
        noises=noises,
        out=out,
        options=EngineOptions(batch_size=2, workers=0, progress=False),
    )


def test_a_generated_copy_evaluates_as_the_pipeline_that_made_it(samples, tmp_path):
    from sysnoise.generate import generate

    folder = samples[0].path.parent
    generate(samples, REFERENCE.replace(decoder="ffmpeg"), tmp_path / "ffmpeg")
    generate(samples, REFERENCE, tmp_path / "same", stage="decode", fmt="npy")  # enters before colour/geometry
    results = _run(
        folder, [f"stored={tmp_path / 'ffmpeg'}", f"stored={tmp_path / 'same'}", "decoder=ffmpeg"], tmp_path / "run"
    )
    outputs = RunOutputs.load(tmp_path / "run" / "outputs.npz")
    by_id = {v["id"]: v for v in results["variants"]}
    stored_ffmpeg = f"stored/{tmp_path / 'ffmpeg'}"
    np.testing.assert_array_equal(outputs.arrays[stored_ffmpeg]["prob"], outputs.arrays["decoder/ffmpeg"]["prob"])
    assert by_id[f"stored/{tmp_path / 'same'}"]["identical"] == 100
    assert by_id[stored_ffmpeg]["n_failed"] == 0


def test_a_device_folder_without_manifest_and_a_missing_file(samples, tmp_path):
    device = tmp_path / "device"
    device.mkdir()
    for sample in samples[1:]:  # the first sample has no device output
        x = tensors(sample.path.read_bytes(), [REFERENCE])[REFERENCE.prefix("normalise")]
        np.save(device / stored.file_name(sample.id, "npy"), x)  # 3xHxW float: the model input itself
    results = _run(samples[0].path.parent, [f"stored={device}"], tmp_path / "run")
    variant = results["variants"][0]
    assert variant["n_failed"] == 1 and variant["identical"] == pytest.approx(100 * 2 / 3)
    failure = results["variant_failures"][variant["id"]][0]
    assert failure["id"] == samples[0].id and "no stored pixels" in failure["reason"]


def test_stored_arrays_of_the_wrong_shape_are_refused(samples, tmp_path):
    np.save(tmp_path / stored.file_name(samples[0].id, "npy"), np.zeros((3, 10, 10), np.float32))
    value = tensors(
        samples[0].path.read_bytes(),
        [REFERENCE.replace(decoder=stored.decoder_name(tmp_path))],
        sample_id=samples[0].id,
    )
    assert "expected 3x32x32 float" in str(next(iter(value.values())))


def test_stored_noise_needs_a_folder():
    from sysnoise.noises import NOISES

    with pytest.raises(UserInputError, match="needs a value"):
        NOISES("stored").variants(REFERENCE)


# --- which pipeline does a device run? ---


def test_match_names_the_pipeline_that_made_the_arrays(samples, tmp_path):
    from sysnoise.generate import generate

    made_by = REFERENCE.replace(resize="opencv-bilinear", colour="bgr")
    generate(samples, made_by, tmp_path / "device")
    (tmp_path / "device" / stored.MANIFEST).unlink()  # a device writes no manifest: the stage is inferred
    stored.manifest.cache_clear()
    result = diffing.match_folder(tmp_path / "device", samples, REFERENCE, steps=3)
    assert result["closest"]["exact_pct"] == 100 and result["closest"]["mean_abs"] == 0
    assert result["closest"]["changed_fields"] == {
        "colour": ["rgb", "bgr"],
        "resize": ["pillow-bilinear", "opencv-bilinear"],
    }
    assert result["stages"] == ["geometry"]
    assert "closest pipeline" in diffing.render_match(result)


def test_match_skips_unreadable_device_files_with_a_reason(samples, tmp_path):
    from sysnoise.generate import generate

    generate(samples, REFERENCE, tmp_path / "device")
    (tmp_path / "device" / stored.file_name(samples[0].id, "png")).write_bytes(b"not a png")
    result = diffing.match_folder(tmp_path / "device", samples, REFERENCE, steps=1)
    assert result["n_matched"] == len(samples) - 1
    assert (
        result["unreadable"][0]["id"] == samples[0].id and "not a readable image" in result["unreadable"][0]["reason"]
    )
    assert result["reference"]["exact_pct"] == 100
