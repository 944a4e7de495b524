"""Versions of installed libraries, by module (its __version__) or by distribution (its metadata):
a leaf that the pipeline stages and the environment record both read."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version


def library_version(module: str) -> str | None:
    """The module's __version__ (or VERSION); None when it cannot be imported."""
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", None) or getattr(mod, "VERSION", "unknown"))


def distribution_version(name: str) -> str | None:
    """An installed distribution's version from its metadata; None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None
