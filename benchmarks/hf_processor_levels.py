"""Level differences between the transformers image-processor resize options and Pillow, on the demo
photos resized to 224x224 (docs/inference.md):  python benchmarks/hf_processor_levels.py"""

import numpy as np
from PIL import Image

from sysnoise.pipeline import hf_processor  # noqa: F401  (registers the options)
from sysnoise.pipeline.resize import RESIZES
from sysnoise.tasks.classification import read_dataset
from sysnoise.zoo.photos import materialise

samples = read_dataset(materialise()).samples
for reference, processor in [("pillow-bicubic", "transformers-bicubic"), ("pillow-bilinear", "transformers-bilinear")]:
    differing, total, largest = 0, 0, 0
    for sample in samples:
        image = np.asarray(Image.open(sample.path).convert("RGB"))
        a, b = RESIZES(reference)(image, (224, 224)), RESIZES(processor)(image, (224, 224))
        levels = np.abs(a.astype(int) - b.astype(int))
        differing += int((levels > 0).sum())
        total += levels.size
        largest = max(largest, int(levels.max()))
    print(
        f"{processor} vs {reference}: {len(samples)} photos resized to 224x224: max {largest} level(s), "
        f"{100 * differing / total:.3f}% of values differ"
    )
