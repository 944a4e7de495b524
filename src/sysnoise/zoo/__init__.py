"""The embedded defaults: demo models and data that need no download."""

from sysnoise.zoo import efficientnet_lite  # noqa: F401  (registers models)
from sysnoise.zoo import resnet  # noqa: F401  (zoo-resnet)
from sysnoise.zoo import smollm  # noqa: F401  (smollm2-135m, a language model)
from sysnoise.zoo import detector, segmenter  # noqa: F401  (zoo-detector, zoo-segmenter)
