"""ncnn runtimes (Tencent's mobile inference engine) through its converter pnnx, registered into RUNTIMES.

The documented flow: the model is traced (`torch.jit.trace`, saved as TorchScript), the pnnx
executable converts it at the example's input shape to an ncnn .param/.bin pair, and `ncnn.Net`
runs it on the CPU, one image per extractor (ncnn blobs have no batch axis). Its precision is set by
ncnn's own switches, `Net.opt.use_fp16_storage` / `use_fp16_packed` / `use_fp16_arithmetic`, and by
pnnx's `fp16` flag (weights stored as FP16 in the .bin):

- ncnn:              pnnx fp16=0, every FP16/BF16 switch off: float32 end to end
- ncnn-fp16-storage: pnnx fp16=1, use_fp16_storage + use_fp16_packed: FP16 weights and activations
                     in memory, float32 arithmetic
- ncnn-fp16:         ncnn's defaults: FP16 storage, packing and arithmetic (FP16 arithmetic needs an
                     ARM CPU with asimdhp; x86 computes in float32: `info` records the CPU's flags)
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from sysnoise import extras
from sysnoise.inference.runtimes import RUNTIMES, engine_module, takes_images

# opt-in: pnnx conversion and batch-1 inference took 45-50 s per option on the demo's 44 photos
# here (3 options: 2.5 minutes, more than the rest of a demo run)
NCNN = {"available": lambda: extras.available("ncnn"), "install": extras.install_line("ncnn"), "opt_in": True}
SWITCHES = ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed")


def convert(model, example, folder: Path, fp16_weights: bool) -> tuple[Path, Path]:
    """The model as ncnn model.ncnn.param / model.ncnn.bin in `folder`, through pnnx; a conversion
    that fails raises with pnnx's own last words."""
    import pnnx
    import torch

    traced = folder / "model.pt"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's deprecation notes
        torch.jit.trace(model.eval(), (example,), strict=False).save(str(traced))
    shape = ",".join(str(int(d)) for d in example.shape)
    done = subprocess.run(
        [pnnx.EXEC_PATH, str(traced), f"inputshape=[{shape}]f32", f"fp16={int(fp16_weights)}"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    param, weights = folder / "model.ncnn.param", folder / "model.ncnn.bin"
    if done.returncode != 0 or not param.is_file() or not weights.is_file():
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise RuntimeError(f"pnnx could not convert the model (exit {done.returncode}): {' | '.join(said)}")
    left = unconverted_layers(param.read_text())
    if left:
        raise RuntimeError(f"pnnx left operators ncnn has no layer for: {', '.join(left)}")
    return param, weights


def unconverted_layers(param_text: str) -> list[str]:
    """Layer types in an ncnn .param that are pnnx's or torch's names (`pnnx.Expression`,
    `torch.argsort`): operators pnnx could not map to an ncnn layer. ncnn's own have no dot."""
    lines = param_text.splitlines()[2:]  # magic number, then layer and blob counts
    return sorted({line.split()[0] for line in lines if line.split() and "." in line.split()[0]})


def _ncnn(switches: dict[str, bool], fp16_weights: bool):
    def build(model, example=None, calibration=None):
        import ncnn
        import numpy as np
        import torch

        start = time.perf_counter()
        with torch.no_grad():
            out = model.eval()(example)
        outs = list(out.values()) if isinstance(out, dict) else [out]
        names = [str(k) for k in out] if isinstance(out, dict) else ["output"]
        shapes = [tuple(o.shape[1:]) for o in outs]  # ncnn drops the batch axis and may squeeze others
        net = ncnn.Net()
        net.opt.num_threads = torch.get_num_threads()
        for switch in SWITCHES:
            setattr(net.opt, switch, switches.get(switch, False))
        with tempfile.TemporaryDirectory(prefix="sysnoise-ncnn-") as tmp:
            param, weights = convert(model, example[:1], Path(tmp), fp16_weights)
            if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
                raise RuntimeError("ncnn could not load the model pnnx wrote")
        blobs = [f"out{i}" for i in range(len(outs))]

        def run(array):
            per_image = []
            for image in array:
                image = np.ascontiguousarray(image)
                mat = ncnn.Mat(image)  # borrows the array's memory: both stay alive until extracted
                extractor = net.create_extractor()
                extractor.input("in0", mat)
                results = []
                for blob, shape in zip(blobs, shapes):
                    status, mat = extractor.extract(blob)
                    if status != 0:
                        raise RuntimeError(f"ncnn could not compute {blob} (status {status})")
                    results.append(np.array(mat).reshape(shape))
                per_image.append(results)
            return [np.stack(column) for column in zip(*per_image)]

        info = {
            "converter": "pnnx (torch.jit.trace)",
            "runtime": "ncnn",
            "ncnn": ncnn.__version__,
            "pnnx_fp16_weights": fp16_weights,
            "options": {s: bool(getattr(net.opt, s)) for s in SWITCHES},
            "num_threads": net.opt.num_threads,
            "input_shape": [1] + list(example.shape[1:]),
            "outputs": names,
            "cpu": {
                "x86_avx2": bool(ncnn.cpu_support_x86_avx2()),
                "arm_fp16_arithmetic": bool(ncnn.cpu_support_arm_asimdhp()),
            },
        }
        return engine_module(
            "ncnn",
            run,
            info,
            outputs=names,
            input_shape=[1] + list(example.shape[1:]),
            build_seconds=time.perf_counter() - start,
        )

    return build


RUNTIMES.register(
    "ncnn", "converted by pnnx, ncnn CPU, float32 (FP16/BF16 storage and arithmetic off)", applies=takes_images, **NCNN
)(_ncnn({}, fp16_weights=False))
RUNTIMES.register(
    "ncnn-fp16-storage",
    "converted by pnnx (FP16 weights), ncnn CPU with FP16 storage, float32 arithmetic",
    applies=takes_images,
    **NCNN,
)(_ncnn({"use_fp16_storage": True, "use_fp16_packed": True}, fp16_weights=True))
RUNTIMES.register(
    "ncnn-fp16",
    "converted by pnnx (FP16 weights), ncnn CPU with its defaults: FP16 storage and "
    "FP16 arithmetic where the CPU has it",
    applies=takes_images,
    **NCNN,
)(_ncnn({"use_fp16_storage": True, "use_fp16_packed": True, "use_fp16_arithmetic": True}, fp16_weights=True))
