"""sysnoise: measure what a model loses when its deployment system differs from its training system.

    import sysnoise
    results = sysnoise.run(sysnoise.wrap_module(model, reference=sysnoise.Pipeline(input_size=224)), "photos/")

Importing the package is cheap: torch and the image libraries load only when a function needs them
(the public functions below are resolved on first use).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sysnoise.pipeline.spec import Pipeline

__version__ = "0.1.0"

# public name -> (module, attribute), imported on first access
_LAZY = {
    "run": ("sysnoise.api", "run"),
    "list_noises": ("sysnoise.api", "list_noises"),
    "wrap_module": ("sysnoise.models", "wrap_module"),
    "load_model": ("sysnoise.api", "load_model"),
    "Results": ("sysnoise.result_view", "Results"),
    "UserInputError": ("sysnoise.errors", "UserInputError"),
}

if TYPE_CHECKING:  # for type checkers and editors; at run time these load lazily
    from sysnoise.api import list_noises, load_model, run
    from sysnoise.errors import UserInputError
    from sysnoise.models import wrap_module
    from sysnoise.result_view import Results

__all__ = ["Pipeline", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sysnoise' has no attribute {name!r}")
