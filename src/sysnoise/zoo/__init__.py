"""The embedded defaults: demo models and data that need no download."""

from sysnoise.zoo import efficientnet_lite  # noqa: F401  (registers models)
