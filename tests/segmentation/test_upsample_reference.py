"""The upsample noise against the mode a model was trained with: an option that leaves every one
of the model's interpolations as it is (bilinear on a bilinear segmenter) is the reference, not
a variant, as a decoder equal to the reference's is."""

import torch

from sysnoise.inference.build import build_model, default_example
from sysnoise.models import load_model
from sysnoise.noises import NOISES


def _outputs_by_option(name: str):
    loaded = load_model(name)
    noise = NOISES("upsample")
    x = torch.randn(1, 3, loaded.reference.input_size, loaded.reference.input_size)
    with torch.no_grad():
        reference = loaded.module(x)
        built = {
            option: build_model(loaded.module, noise.apply(loaded.reference, option), example=x)(x)
            for option in noise.options()
        }
    variants = {v.option for v in noise.variants(loaded.reference, None, loaded.module)}
    return loaded, reference, built, variants


def test_the_segmenters_upsample_noise_has_no_option_equal_to_its_trained_bilinear_mode():
    loaded, reference, built, variants = _outputs_by_option("zoo-segmenter")
    assert loaded.module.upsample_mode == "bilinear"  # what it was trained with (its own config)
    assert variants == {"upsample-nearest", "upsample-align-corners"}
    # independent check: the options left out are bit-identical to the reference, the kept ones are not
    for option, out in built.items():
        assert torch.equal(out, reference) == (option not in variants), option


def test_a_nearest_fpn_keeps_bilinear_and_drops_nearest():
    """The zoo detector's FPN upsamples with nearest: the swap is to bilinear."""
    loaded = load_model("zoo-detector")
    variants = {v.option for v in NOISES("upsample").variants(loaded.reference, None, loaded.module)}
    assert "upsample-bilinear" in variants
    assert not variants & {"upsample-nearest", "upsample-align-corners"}
    from sysnoise.inference.scoped import interpolations

    modes = {mode for mode, _, _ in interpolations(loaded.module, default_example(loaded.reference))}
    assert modes == {"nearest"}
