"""sysnoise: measure what a model loses when its deployment system differs from its training system.

Importing the package is cheap: torch and the image libraries load only when a function needs them.
"""

__version__ = "0.1.0"

from sysnoise.pipeline.spec import Pipeline  # noqa: E402  (pure dataclass, no heavy imports)

__all__ = ["Pipeline", "__version__"]
