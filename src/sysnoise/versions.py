"""Versions of installed libraries, by module (its __version__) or by distribution (its metadata):
a leaf that the pipeline stages and the environment record both read."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version


def library_version(module: str) -> str | None:
    """The module's __version__ (or VERSION); None when it cannot be imported. A module not imported
    yet is read without importing it where it can be (torchvision, scipy, onnxruntime cost a run
    seconds to import only for this)."""
    if module not in sys.modules:
        found = version_unimported(module)
        if found is not None:
            return found
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


def version_unimported(module: str) -> str | None:
    """A package's `__version__ = "..."` line in its version.py (torchvision's carries the build's
    local tag, +cpu or +cu130, that its distribution's metadata lacks), else the version of the
    distribution of the same name; None when neither says (library_version then imports it)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    version_file = os.path.join(os.path.dirname(spec.origin), "version.py")
    if os.path.isfile(version_file):
        with open(version_file, encoding="utf-8") as fh:
            match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", fh.read(), re.M)
        if match:
            return match.group(1)
    return distribution_version(module)
