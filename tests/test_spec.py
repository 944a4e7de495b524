import pytest

from sysnoise.pipeline.spec import STAGE_NAMES, Pipeline


def test_json_and_yaml_round_trip_preserve_equality_and_hash(tmp_path):
    p = Pipeline(decoder="opencv", resize="opencv-area", operators=("maxpool-ceil",), mean=[1, 2, 3])
    assert Pipeline.from_json(p.to_json()) == p
    path = tmp_path / "p.yaml"
    path.write_text(p.to_yaml())
    loaded = Pipeline.load(path)
    assert loaded == p and hash(loaded) == hash(p)
    assert {p: 1}[loaded] == 1


def test_containers_are_normalised_so_equal_systems_compare_equal():
    assert Pipeline(operators=("b", "a")) == Pipeline(operators=["a", "b", "a"])
    assert Pipeline(mean=(1, 2, 3)) == Pipeline(mean=[1.0, 2.0, 3.0])


def test_yaml_file_overrides_only_the_fields_it_names(tmp_path):
    base = Pipeline(resize="pillow-bicubic", input_size=240)
    path = tmp_path / "deploy.yaml"
    path.write_text("decoder: opencv\nresize: opencv-bilinear\n")
    deployed = Pipeline.load(path, base=base)
    assert deployed.input_size == 240
    assert base.diff(deployed) == {"decoder": ("pillow", "opencv"), "resize": ("pillow-bicubic", "opencv-bilinear")}
    assert base.first_divergent_stage(deployed) == "decode"


def test_unknown_field_is_named_in_the_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("decodr: opencv\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*decodr"):
        Pipeline.load(path)


def test_invalid_values_are_rejected():
    with pytest.raises(ValueError):
        Pipeline(std=(0, 1, 1))
    with pytest.raises(ValueError):
        Pipeline(crop_pct=1.5)


def test_prefixes_nest_and_separate_stages():
    a = Pipeline()
    b = a.replace(resize="opencv-area")
    assert a.prefix("colour") == b.prefix("colour")
    assert a.prefix("geometry") != b.prefix("geometry")
    lengths = [len(a.prefix(stage)) for stage in STAGE_NAMES]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    with pytest.raises(ValueError):
        a.prefix("nonsense")
