"""The embedded defaults: demo models and data that need no download."""

from sysnoise.zoo import efficientnet_lite  # noqa: F401  (registers models)
from sysnoise.zoo import smollm  # noqa: F401  (smollm2-135m, a language model)
