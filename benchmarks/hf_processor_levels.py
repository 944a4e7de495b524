"""Level differences between the transformers image-processor resize options and Pillow, on the demo photos
resized to 224x224 (docs/inference.md):  python benchmarks/hf_processor_levels.py"""
import numpy as np
from PIL import Image
from sysnoise.pipeline import hf_processor  # noqa
from sysnoise.pipeline.resize import RESIZES
from sysnoise.zoo.photos import materialise
from sysnoise.tasks.classification import read_dataset
ds = read_dataset(materialise())
for ref, hf in [("pillow-bicubic", "transformers-bicubic"), ("pillow-bilinear", "transformers-bilinear")]:
    diffs, total, maxd = 0, 0, 0
    for s in ds.samples:
        img = np.asarray(Image.open(s.path).convert("RGB"))
        a, b = RESIZES(ref)(img, (224, 224)), RESIZES(hf)(img, (224, 224))
        d = np.abs(a.astype(int) - b.astype(int))
        diffs += int((d > 0).sum()); total += d.size; maxd = max(maxd, int(d.max()))
    print(f"{hf} vs {ref}: {len(ds.samples)} photos resized to 224x224: max {maxd} level(s), {100*diffs/total:.3f}% of values differ")
