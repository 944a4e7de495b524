"""MixTransform: frequencies, determinism (also across DataLoader worker counts), and that the
pipeline it reports is the one that made the pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sysnoise.pipeline import preprocess
from sysnoise.pipeline.spec import Pipeline
from sysnoise.registry import UnknownNameError
from sysnoise.train.mix import MixBatchSampler, MixDataset, MixTransform, RandomResizedCrop, parse_mix

BASE = Pipeline(input_size=64, crop_pct=1.0)  # the zoo classifier's geometry: 80x80 -> 64x64
WEIGHTED = {
    "resize": {"pillow-bilinear": 1, "opencv-bilinear": 1, "opencv-nearest": 2},
    "decoder": ["pillow", "ffmpeg"],
}


def binomial_ok(count: int, n: int, p: float, z: float = 5.0) -> bool:
    """count within z standard deviations of Binomial(n, p)'s mean: a correct sampler fails with
    probability below 1e-6; the wrong probabilities a bug would give here are off by far more."""
    return abs(count - n * p) <= z * np.sqrt(n * p * (1 - p))


def test_each_option_is_drawn_with_its_declared_frequency():
    mix = MixTransform(WEIGHTED, BASE, seed=7)
    n = 20000
    drawn = [mix.pipelines[mix.choose(i)] for i in range(n)]
    for option, p in {"pillow-bilinear": 0.25, "opencv-bilinear": 0.25, "opencv-nearest": 0.5}.items():
        assert binomial_ok(sum(d.resize == option for d in drawn), n, p), option
    for option in ("pillow", "ffmpeg"):
        assert binomial_ok(sum(d.decoder == option for d in drawn), n, 0.5), option
    # the fields are drawn independently: the joint frequency is the product
    both = sum(d.resize == "opencv-nearest" and d.decoder == "ffmpeg" for d in drawn)
    assert binomial_ok(both, n, 0.25)
    # every other field stays the base's
    assert {d.replace(resize=BASE.resize, decoder=BASE.decoder) for d in drawn} == {BASE}


def test_per_batch_draws_have_the_declared_frequencies_too():
    mix = MixTransform({"resize": {"pillow-bilinear": 3, "opencv-nearest": 1}}, BASE, seed=1)
    n = 8000
    nearest = sum(mix.pipelines[mix.choose_batch(b, epoch=2)].resize == "opencv-nearest" for b in range(n))
    assert binomial_ok(nearest, n, 0.25)


def test_draws_are_a_function_of_seed_epoch_and_index_only():
    a, b = MixTransform(WEIGHTED, BASE, seed=3), MixTransform(WEIGHTED, BASE, seed=3)
    forward = [a.choose(i, epoch=1) for i in range(500)]
    backward = [b.choose(i, epoch=1) for i in reversed(range(500))][::-1]
    assert forward == backward  # order of requests does not matter
    assert forward != [a.choose(i, epoch=2) for i in range(500)]  # a new epoch draws again
    assert forward != [MixTransform(WEIGHTED, BASE, seed=4).choose(i, epoch=1) for i in range(500)]
    a.set_epoch(1)
    assert [a.choose(i) for i in range(500)] == forward


def test_reported_pipeline_made_the_pixels(scene_files):
    import cv2

    mix = MixTransform(
        {"resize": ["pillow-bilinear", "opencv-nearest"], "decoder": ["pillow", "ffmpeg"]},
        BASE,
        seed=0,
        output="pixels",
    )
    seen = set()
    for index in range(40):
        path = scene_files[index % len(scene_files)]
        pixels, pipeline = mix(path, index)
        seen.add((pipeline.resize, pipeline.decoder))
        assert pipeline == mix.pipelines[mix.choose(index)]
        engine = preprocess.pixels(path.read_bytes(), [pipeline])[pipeline.prefix("geometry")]
        assert np.array_equal(pixels, engine)
        if pipeline.decoder == "pillow":  # independently: the libraries called directly
            decoded = np.asarray(Image.open(path).convert("RGB"))
            expected = (
                np.asarray(Image.fromarray(decoded).resize((64, 64), Image.Resampling.BILINEAR))
                if pipeline.resize == "pillow-bilinear"
                else cv2.resize(decoded, (64, 64), interpolation=cv2.INTER_NEAREST)
            )
            assert np.array_equal(pixels, expected)
    assert len(seen) == 4  # every combination came up, so every branch above was checked


def test_normalised_and_uint8_outputs_are_the_same_pixels(scene_files):
    path = scene_files[0]
    pixels, p = MixTransform(WEIGHTED, BASE, seed=2, output="pixels")(path, 5)
    tensor, p2 = MixTransform(WEIGHTED, BASE, seed=2)(path, 5)
    chw, p3 = MixTransform(WEIGHTED, BASE, seed=2, output="uint8")(path, 5)
    assert p == p2 == p3
    assert np.array_equal(chw.numpy(), pixels.transpose(2, 0, 1))
    expected = (pixels.astype(np.float32) - np.float32(p.mean)) / np.float32(p.std)
    assert np.allclose(tensor.numpy(), expected.transpose(2, 0, 1), atol=1e-6)
    # the engine's model input for that pipeline, bit for bit
    engine = preprocess.tensors(path.read_bytes(), [p])[p.prefix("normalise")]
    assert np.array_equal(tensor.numpy(), engine)


def test_all_pixels_lists_every_pipeline_in_order(scene_files):
    mix = MixTransform(WEIGHTED, BASE, seed=0, output="pixels")
    banks = mix.all_pixels(scene_files[1])
    assert len(banks) == len(mix.pipelines) == 6
    for index in range(12):
        pixels, pipeline = mix(scene_files[1], index)
        assert np.array_equal(banks[mix.pipelines.index(pipeline)], pixels)


def test_a_forced_choice_is_used_and_keeps_the_random_crop_box(scene_files):
    mix = MixTransform(
        {"resize": ["pillow-bilinear", "opencv-nearest"]},
        BASE,
        seed=0,
        output="pixels",
        random_crop=RandomResizedCrop(),
    )
    drawn, forced_same = mix(scene_files[2], 9)[1], None
    for choice in range(2):
        pixels, pipeline = mix(scene_files[2], 9, choice=choice)
        assert pipeline == mix.pipelines[choice]
        if pipeline == drawn:
            forced_same = pixels
    assert np.array_equal(forced_same, mix(scene_files[2], 9)[0])


def test_random_resized_crop_boxes_follow_scale_and_ratio():
    crop = RandomResizedCrop(scale=(0.2, 0.6), ratio=(0.75, 1.25))
    boxes = [crop.box(300, 200, np.random.default_rng([0, i])) for i in range(300)]
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= 300 and 0 <= top < bottom <= 200
        # rounding to whole pixels moves area and aspect a little
        assert 0.2 * 0.95 <= (right - left) * (bottom - top) / 60000 <= 0.6 * 1.05
        assert 0.75 * 0.95 <= (right - left) / (bottom - top) <= 1.25 * 1.05
    assert len(set(boxes)) > 250


def test_random_crop_output_is_the_kernel_applied_to_the_box(scene_files):
    import cv2

    mix = MixTransform(
        {"resize": ["opencv-nearest"]},
        Pipeline(input_size=32),
        seed=5,
        output="pixels",
        random_crop=RandomResizedCrop(),
    )
    pixels, pipeline = mix(scene_files[3], 4)
    rng = np.random.default_rng([5, 0, 0, 4])  # the sample's stream: one draw for the choice, then the box
    rng.random()
    left, top, right, bottom = RandomResizedCrop().box(80, 80, rng)
    decoded = np.asarray(Image.open(scene_files[3]).convert("RGB"))
    expected = cv2.resize(
        np.ascontiguousarray(decoded[top:bottom, left:right]), (32, 32), interpolation=cv2.INTER_NEAREST
    )
    assert pixels.shape == (32, 32, 3) and np.array_equal(pixels, expected)


def _epoch_items(dataset, sampler, workers: int):
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers)
    return [(x.numpy(), y.numpy(), c.numpy()) for x, y, c in loader]


@pytest.mark.parametrize("per", ["sample", "batch"])
def test_dataloader_results_do_not_depend_on_the_number_of_workers(scene_files, per):
    from torch.utils.data import SequentialSampler

    samples = [(path, i % 10) for i, path in enumerate(scene_files)]
    mix = MixTransform(WEIGHTED, BASE, seed=11)
    dataset = MixDataset(samples, mix, with_choice=True)
    sampler = MixBatchSampler(SequentialSampler(samples), 4, mix, per=per)
    sampler.set_epoch(3)
    single = _epoch_items(dataset, sampler, 0)
    multi = _epoch_items(dataset, sampler, 2)
    assert len(single) == len(multi) == 3
    for (x0, y0, c0), (x1, y1, c1) in zip(single, multi):
        assert np.array_equal(x0, x1) and np.array_equal(y0, y1) and np.array_equal(c0, c1)
    choices = np.concatenate([c for _, _, c in single])
    if per == "batch":  # one pipeline per batch, the one the sampler drew for it
        assert [set(c.tolist()) for _, _, c in single] == [{mix.choose_batch(b, 3)} for b in range(3)]
    else:
        assert choices.tolist() == [mix.choose(i, 3) for i in range(len(samples))]


def test_plain_index_keys_use_the_current_epoch(scene_files):
    mix = MixTransform(WEIGHTED, BASE, seed=0)
    dataset = MixDataset([(p, 0) for p in scene_files], mix, with_choice=True)
    dataset.set_epoch(4)
    assert [dataset[i][2] for i in range(len(dataset))] == [mix.choose(i, 4) for i in range(len(dataset))]
    x, label = MixDataset([(scene_files[0], 7)], mix)[0]
    assert label == 7 and tuple(x.shape) == (3, 64, 64)


def test_no_options_is_the_base_pipeline(scene_files):
    mix = MixTransform(None, BASE)
    assert mix.pipelines == (BASE,) and mix.reference == BASE
    assert mix(scene_files[0], 3)[1] == BASE


def test_declarations_are_checked():
    with pytest.raises(UnknownNameError, match="opencv-nearst"):
        MixTransform({"resize": ["opencv-nearst"]}, BASE)
    with pytest.raises(ValueError, match="cannot mix 'precision'"):
        MixTransform({"precision": ["fp16"]}, BASE)
    with pytest.raises(ValueError, match="positive"):
        MixTransform({"resize": {"pillow-bilinear": 0}}, BASE)
    with pytest.raises(ValueError, match="twice"):
        MixTransform({"resize": ["pillow-bilinear", "pillow-bilinear"]}, BASE)
    with pytest.raises(ValueError, match="cannot be combined"):
        MixTransform({"decoder": ["pillow-draft"]}, BASE, random_crop=RandomResizedCrop())


def test_parse_mix_reads_weights():
    assert parse_mix(["resize=pillow-bilinear,opencv-nearest:3", "decoder=ffmpeg"]) == {
        "resize": {"pillow-bilinear": 1.0, "opencv-nearest": 3.0},
        "decoder": {"ffmpeg": 1.0},
    }
    with pytest.raises(ValueError, match="not a number"):
        parse_mix(["resize=pillow-bilinear:x"])
    with pytest.raises(ValueError, match="twice"):
        parse_mix(["resize=pillow-bilinear", "resize=opencv-nearest"])


def test_the_documented_imagenet_setup_runs(scene_files):
    """docs/mix-training.md's drop-in: random crop with the drawn kernel, a flip after, a shuffled
    sampler, workers; each item is the flip (or not) of exactly what the transform returns."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    flips = []

    def flip(x):
        flips.append(True)
        return torch.flip(x, dims=(-1,))

    files = [(path, i % 10) for i, path in enumerate(scene_files)]
    mix = MixTransform(
        {"decoder": ["pillow", "ffmpeg"], "resize": ["pillow-bicubic", "opencv-area"]},
        base=Pipeline(input_size=32),
        seed=0,
        random_crop=RandomResizedCrop(),
    )
    data = MixDataset(files, mix, then=flip, with_choice=True)
    torch.manual_seed(0)
    batches = MixBatchSampler(RandomSampler(files), 5, mix, per="sample", drop_last=True)
    batches.set_epoch(2)
    seen = 0
    for x, y, choice in DataLoader(data, batch_sampler=batches, num_workers=0):
        assert tuple(x.shape) == (5, 3, 32, 32) and x.dtype == torch.float32
        seen += len(y)
    assert seen == 10 and len(flips) == 10
    x, label, choice = data[(4, 2, None)]
    direct, pipeline = mix(files[4][0], 4, epoch=2)
    assert label == 4 and pipeline == mix.pipelines[choice] and torch.equal(x, torch.flip(direct, dims=(-1,)))
