"""Embedded evaluation text: The Devil's Dictionary (Ambrose Bierce, 1911; public domain), as
JSONL sets built by build.py. See README.md for the source, licence and selection rules."""

from pathlib import Path

HERE = Path(__file__).parent

# name -> (file, format): the language demo's data sets
DEMO_SETS = {
    "lastword": (HERE / "devil-lastword.jsonl", "lambada"),
    "text": (HERE / "devil-text.jsonl", "text"),
}

# the demo's systems: the paper's Table 5 columns, FP16 and INT8 (as LLM.int8() and as torch's
# dynamic INT8); `sysnoise run --task language` measures every precision option that fits the model
DEMO_NOISES = ("precision=fp16,int8-llm,int8-dynamic",)
