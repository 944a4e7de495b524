"""Run every benchmark and print their tables (`make bench`)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
RUNS = [
    ["engine_floor.py", "--data", "demo"],
    ["engine_floor.py", "--data", "scenes", "--model", "zoo-resnet", "--limit", "2000"],
    ["vs_plain_loop.py", "--data", "demo"],
    ["vs_plain_loop.py", "--data", "scenes", "--model", "zoo-resnet", "--limit", "500"],
    ["memory.py"],
    ["inference_agreement.py"],
]

for run in RUNS:
    print(f"\n=== {' '.join(run)}", flush=True)
    subprocess.run([sys.executable, str(HERE / run[0]), *run[1:]], check=False)
