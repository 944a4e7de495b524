"""Command line: thin argument parsing over sysnoise.api."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from rich.console import Console

from sysnoise import __version__, api, diffing, gates
from sysnoise.engine.execute import EngineOptions
from sysnoise.engine.lifetime import Terminated
from sysnoise.errors import UserInputError
from sysnoise.inference.adapt import ADAPTATIONS
from sysnoise.language_models import load_language_model
from sysnoise.noises import default_noises
from sysnoise.registry import UnknownNameError
from sysnoise.report import leaderboard
from sysnoise.report.console import print_summary
from sysnoise.report.language import write_table
from sysnoise.report.markdown import shown
from sysnoise.report.matrix import render_markdown
from sysnoise.report.results import read_results, write_reports
from sysnoise.report.summary import summary
from sysnoise.tasks.definition import TASKS
from sysnoise.train import finetune
from sysnoise.train.robust import ROBUSTNESS
from sysnoise.train.zoo_training import RECIPES, train
from sysnoise.validate import load_pipeline
from sysnoise.zoo import photo_corpus, scenes
from sysnoise.zoo.photos import materialise
from sysnoise.zoo.text import DEMO_NOISES, DEMO_SETS


def _engine_args(parser: argparse.ArgumentParser, noises: bool = True) -> None:
    parser.add_argument(
        "--batch-size",
        type=int,
        help="images per forward pass (default: the fastest on this machine, probed on a run's first "
        "inputs once per model stage and kept in $SYSNOISE_CACHE; docs/scale.md)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="pre-processing worker processes beside the model (default 1; 0 = none)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument(
        "--cache",
        metavar="DIR",
        help="on-disk cache of pre-processed inputs keyed by file hash and pipeline; "
        "a rerun with more variants computes only the new ones",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=256,
        help="samples committed to disk together; a killed run loses at most one chunk (default 256)",
    )
    parser.add_argument("--fresh", action="store_true", help="discard partial results in --out and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--quiet", action="store_true", help="no progress, no reference lines, no summary table")
    parser.add_argument(
        "--adapt",
        choices=ADAPTATIONS.names(),
        help="test-time adaptation: every column (reference and each variant) adapts its own copy of "
        "the model online on its stream (TENT: BatchNorm affine parameters by entropy "
        "minimisation; inference/adapt.py)",
    )
    parser.add_argument(
        "--include-corrupt",
        action="store_true",
        help="measure images whose data is corrupt (libjpeg warnings, PNG CRC errors) in every "
        "column; by default they are skipped and counted apart (docs/reliability.md)",
    )
    if not noises:  # commands that choose their own columns (matrix)
        return
    parser.add_argument(
        "--noise",
        action="append",
        dest="noises",
        metavar="SPEC",
        help="noise to measure, optionally with options: resize or resize=opencv-area,pillow-box "
        "(repeatable; default: the task's defaults in the catalogue, `sysnoise list` marks "
        "them; classification: " + ", ".join(default_noises("classification")) + ")",
    )
    parser.add_argument(
        "--deploy",
        metavar="PIPELINE.yaml",
        help="your deployment pipeline (fields left out come from the reference): measured as one "
        "variant, its delta attributed to the fields it changes",
    )


def _script_args(parser: argparse.ArgumentParser) -> None:
    """What a script or CI step needs: gates, machine-readable output, a quick subset."""
    parser.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="EXPR",
        help="exit 3 after the run when the condition holds, e.g. 'delta>0.5', 'resize.max>1', "
        "'flip>2%%', 'deploy.delta>0.3' (repeatable; see sysnoise/gates.py)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary (reference, per-noise and per-option deltas with intervals, failed "
        "gates) as one JSON document on stdout; tables and progress go to stderr",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="a deterministic subset of N samples (stratified by label) for a quick look",
    )


def _stepwise(value: str | None):
    """--stepwise greedy | none | noise1,noise2=option,...  ->  api.run's stepwise argument."""
    if value is None or value == "none":
        return None
    if value == "greedy":
        return value
    return [part.strip() for part in value.split(",") if part.strip()]


def _stepwise_arg(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--stepwise",
        default=default,
        metavar="greedy|none|NOISE,...",
        help="combine noises one at a time and report the cumulative delta: greedy (worst single "
        "noise first), none, or noises in your order, each NOISE or NOISE=OPTION "
        f"(default: {default or 'none'})",
    )


def _options(args):
    if (args.batch_size is not None and args.batch_size < 1) or args.workers < 0 or args.chunk_size < 1:
        raise UserInputError("--batch-size and --chunk-size must be >= 1, --workers >= 0")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise UserInputError("--limit must be >= 1")
    return EngineOptions(
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not (args.no_progress or args.quiet),
        device=args.device,
        chunk_size=args.chunk_size,
        cache_dir=args.cache,
        include_corrupt=args.include_corrupt,
        adapt=getattr(args, "adapt", None),
    )


def _gates(args, noises) -> list:
    """--fail-if conditions, parsed and checked against what the run measures before any work."""
    parsed = [gates.parse(text) for text in args.fail_if]
    gates.check_requested(
        parsed,
        noises=list(noises or ()),
        deploy=bool(getattr(args, "deploy", None)),
        stepwise=bool(_stepwise(getattr(args, "stepwise", None))),
    )
    return parsed


def _show(results: dict | None, out: Path, args=None, gates_: list | None = None) -> int:
    """Show the run (table, or --json on stdout) and check the gates: the exit code."""
    if results is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    failed = gates.violations(gates_ or [], results)
    as_json, quiet = bool(args and getattr(args, "json", False)), bool(args and args.quiet)
    if not quiet:
        print_summary(results, Console(stderr=as_json))
        written = [out / name for name in ("results.json", "outputs.npz", "report.md", "report.html", "report.csv")]
        print(
            "\nwrote " + ", ".join(str(p) for p in written if p.exists()),  # language runs write no html/csv
            file=sys.stderr if as_json else sys.stdout,
        )
    if as_json:
        print(json.dumps(summary(results, failed), indent=1))
    for failure in failed:
        values = ", ".join(f"{what} {value:g}" for what, value in failure["values"].items())
        print(f"sysnoise: gate failed: {failure['gate']} ({values})", file=sys.stderr)
    return gates.FAILED_GATE_EXIT if failed else 0


def cmd_run(args) -> int:
    noises = args.noises or default_noises(args.task)
    checks = _gates(args, noises)
    results = api.run(
        args.model,
        args.data,
        task=args.task,
        noises=noises,
        out=args.out,
        weights=args.weights,
        reference=args.reference,
        options=_options(args),
        fresh=args.fresh,
        allow_outside_root=args.allow_outside_root,
        stepwise=_stepwise(args.stepwise),
        deploy=args.deploy,
        calibration_data=args.calibration_data,
        calibration_samples=args.calibration_samples,
        deployed_onnx=args.deployed_onnx,
        limit=args.limit,
        list_file=args.list_file,
        class_map=args.class_map,
        ignore_index=args.ignore_index,
        fmt=args.format,
    )
    return _show(results, Path(args.out), args, checks)


DEMO = {  # --task -> (model, scenes dataset kind, data file in it); classification: the embedded photos
    "detection": ("zoo-detector", "detection", "annotations.json"),
    "segmentation": ("zoo-segmenter", "detection", "segmentation.txt"),
}
DENSE_DEMO_IMAGES = 200  # the first 200 scenes val images: the zoo cards' reference subset


def cmd_demo(args) -> int:
    if args.task in DEMO:
        model, kind, target = DEMO[args.task]
        data = scenes.materialise(kind, "val", n=args.images or DENSE_DEMO_IMAGES) / target
        print(f"demo scenes: {data}")
        data_name = None
    else:
        model, data, data_name = args.model, materialise(), "photos"
        print(f"demo photos: {data.parent}")
    out = Path(args.out or f"results/demo-{model}")
    noises = args.noises or default_noises(args.task)
    checks = _gates(args, noises)
    results = api.run(
        model,
        data,
        task=args.task,
        noises=noises,
        out=out,
        options=_options(args),
        fresh=args.fresh,
        stepwise=_stepwise(args.stepwise),
        deploy=args.deploy,
        limit=args.limit,
        data_name=data_name,
    )
    return _show(results, out, args, checks)


def cmd_demo_lm(args) -> None:
    out = Path(args.out or f"results/demo-lm-{args.model}")
    print(f"loading {args.model} (about half a minute)")
    loaded = load_language_model(args.model)
    runs = []
    for name, (path, fmt) in DEMO_SETS.items():
        runs.append(
            api.run(
                loaded,
                path,
                task="language",
                fmt=fmt,
                noises=args.noises or DEMO_NOISES,
                out=out / name,
                options=_options(args),
                fresh=args.fresh,
            )
        )
        _show(runs[-1], out / name, args)
    print(f"wrote {write_table(runs, out / 'report.md')}")


def cmd_report(args) -> None:
    for source in args.results:
        folder = Path(source) if Path(source).is_dir() else Path(source).parent
        for path in write_reports(read_results(source), folder):
            print(f"wrote {path}")


def cmd_leaderboard(args) -> None:
    conn = leaderboard.connect(args.db)
    for source in args.results:
        results = read_results(source)
        leaderboard.add(conn, results, str(source))
        print(f"added {results['model']['name']} on {results['dataset']['path']}")
    boards = leaderboard.boards(conn, args.dataset)
    if not boards:
        raise UserInputError(
            f"{args.db}: no runs stored"
            + (f" for dataset {args.dataset!r}" if args.dataset else "")
            + "; add some with: sysnoise leaderboard RESULTS_FOLDER..."
        )
    out = Path(args.out) if args.out else Path(args.db).parent
    out.mkdir(parents=True, exist_ok=True)
    markdown = leaderboard.render_markdown(boards)
    (out / "leaderboard.md").write_text(markdown)
    (out / "leaderboard.html").write_text(leaderboard.render_html(boards))
    print(markdown)
    print(f"wrote {out / 'leaderboard.md'}, {out / 'leaderboard.html'}")


def cmd_list(args) -> None:
    catalogue = api.list_catalogue()
    if args.json:
        print(json.dumps(catalogue, indent=1))
        return
    for name, noise in catalogue["noises"].items():
        defaults = f"  (default: {', '.join(noise['default_for'])})" if noise["default_for"] else ""
        print(f"{name}  [{noise['stage']}]  {noise['description']}{defaults}")
        for option, text in noise["options"].items():
            print(f"    {option:<28} {text}")
    print("\nmodels:")
    for name, text in catalogue["models"].items():
        print(f"    {name:<28} {text}")
    print("    torchvision:ARCH / timm:ARCH  with --weights PATH (local state_dict or .safetensors)")
    print("    onnx:FILE.onnx                a deployed ONNX file on ONNX Runtime (--reference: its pipeline)")
    print("    openvino:FILE.xml             a deployed OpenVINO IR on OpenVINO (--reference: its pipeline)")
    print("\ndatasets (--data NAME; written to $SYSNOISE_CACHE on first use; scenes serves every vision task):")
    for name, text in catalogue["datasets"].items():
        print(f"    {name:<28} {text}")


def cmd_train_zoo(args) -> None:
    if args.name not in RECIPES:
        raise UserInputError(f"no training recipe {args.name!r}; recipes: {', '.join(RECIPES)}")
    card = train(
        args.name,
        seed=args.seed,
        epochs=args.epochs,
        out=Path(args.out) if args.out else None,
        init=args.init,
        n_train=args.n_train,
    )
    print(json.dumps(card.get("metrics", {}), indent=1))


def cmd_train(args) -> None:
    given = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "n_train", "seed", "per")}
    recipe = finetune.Recipe(**{k: v for k, v in given.items() if v is not None})
    transform = finetune.transform_for(args.model, args.pipeline, args.mix, seed=recipe.seed)
    name = args.name or finetune.default_name(args.model, transform)
    record = finetune.finetune(
        transform, args.out, name, model=args.model, init=args.init, recipe=recipe, label=args.label, robust=args.robust
    )
    print(json.dumps(record["metrics"], indent=1))


def cmd_matrix(args) -> None:
    reference = load_pipeline(args.reference) if args.reference else None
    doc = api.matrix(
        args.models,
        args.data,
        args.test,
        out=args.out,
        reference=reference,
        options=_options(args),
        fresh=args.fresh,
        title=args.title,
    )
    print(render_markdown(doc, args.title))
    print(f"wrote {Path(args.out) / 'matrix.json'}, matrix.md, matrix.csv and runs/")


def cmd_fetch_photos(args) -> None:
    list_file = photo_corpus.fetch(root=Path(args.cache) if args.cache else None)
    print(f"photos-large: {list_file} (use --data photos-large)")


def _reference_args(parser: argparse.ArgumentParser, data_flag: str) -> None:
    """Where the images' list and the reference pipeline come from (diff, generate)."""
    parser.add_argument("--list-file", help=f"list of 'relative/path label' lines, paths relative to {data_flag}")
    parser.add_argument("--model", help="take the reference pipeline from this model (default: the Pipeline defaults)")
    parser.add_argument(
        "--reference", help="YAML/JSON reference pipeline (fields it leaves out: the model's or defaults)"
    )


def cmd_diff(args) -> None:
    common = dict(model=args.model, reference=args.reference, out=args.out, limit=args.limit, list_file=args.list_file)
    if args.match:
        if args.pipelines:
            raise UserInputError("give either two pipelines or --match DIR, not both")
        print(diffing.render_match(api.match(args.match, args.images, steps=args.steps, **common)))
        written = "match.json"
    else:
        if len(args.pipelines) != 2:
            raise UserInputError(
                "diff needs two pipelines, e.g. `sysnoise diff reference decoder=ffmpeg --images DIR`, or --match DIR"
            )
        print(diffing.render_diff(api.diff(*args.pipelines, args.images, gain=args.gain, **common)))
        written = "diff.json and pictures/"
    if args.out:
        print(f"\nwrote {Path(args.out) / written}")


def cmd_generate(args) -> None:
    manifest = api.generate(
        args.data,
        args.out,
        pipeline=args.pipeline,
        model=args.model,
        reference=args.reference,
        list_file=args.list_file,
        fmt=args.format,
        stage=args.stage,
        allow_outside_root=args.allow_outside_root,
        progress=not args.no_progress,
    )
    print(
        f"wrote {manifest['n_written']} {args.format.upper()} files ({args.stage} stage) and "
        f"{manifest['list_file']} to {args.out}; {len(manifest['failures'])} failed"
    )
    for failure in manifest["failures"]:
        print(f"    {shown(failure['id'])}: {failure['reason']}")
    print(f"evaluate them as a variant: sysnoise run ... --noise stored={args.out}")


def _run_command(sub) -> None:
    run = sub.add_parser("run", help="measure a model under its reference pipeline and noised variants")
    run.add_argument(
        "--model",
        required=True,
        help="zoo name (see `sysnoise list`), torchvision:ARCH, timm:ARCH, hf:FOLDER or "
        "onnx:FILE.onnx / openvino:FILE.xml (a deployed file on its engine; --reference: its pipeline)",
    )
    run.add_argument("--weights", help="local weights (state_dict .pth/.pt or .safetensors)")
    run.add_argument(
        "--data",
        required=True,
        help="class-folder tree, folder of unlabeled images, list file, COCO "
        "annotations.json, segmentation list, or a dataset name (`sysnoise list`: scenes serves each task)",
    )
    run.add_argument("--list-file", help="list of 'relative/path label' lines, paths relative to --data")
    run.add_argument(
        "--class-map",
        metavar="FILE",
        help="JSON/YAML mapping of the dataset's class names (class "
        "folders, e.g. ImageNet wnids; a ClassLabel column's names) to the model's class indices",
    )
    run.add_argument("--reference", help="YAML/JSON pipeline the model was trained with (default: the model's own)")
    run.add_argument("--out", default="results/run", help="results folder (default results/run); reruns resume")
    run.add_argument("--allow-outside-root", action="store_true", help="let a list file name files outside --data")
    run.add_argument(
        "--task",
        default="classification",
        choices=TASKS.names(),
        help="; ".join(f"{t.name}: {t.description}" for t in TASKS) + " (default classification)",
    )
    run.add_argument(
        "--ignore-index",
        type=int,
        metavar="N",
        help="segmentation: the label-map value of unlabeled pixels, left out of mIoU (default 255)",
    )
    run.add_argument(
        "--format", help="language: piqa, hellaswag, winogrande, lambada or text (default: from the first line's keys)"
    )
    run.add_argument(
        "--calibration-data",
        metavar="PATH",
        help="INT8 calibration images (folder or list file), disjoint from --data (default: hold out "
        "a deterministic slice of --data, at most 32 samples and a fifth, from every column)",
    )
    run.add_argument("--calibration-samples", type=int, metavar="N", help="how many calibration samples to use")
    run.add_argument(
        "--deployed-onnx",
        metavar="FILE",
        help="your own ONNX file: measured on ONNX Runtime against the torch --model as the reference",
    )
    _engine_args(run)
    _script_args(run)
    _stepwise_arg(run, None)
    run.set_defaults(func=cmd_run)


def _demo_command(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the embedded default: EfficientNet-Lite0 on real photos; --task detection / "
        "segmentation: the zoo detector / segmenter on scenes",
    )
    demo.add_argument("--model", default="efficientnet_lite0", help="efficientnet_lite0 (default), _lite1, _lite2")
    demo.add_argument(
        "--task",
        default="classification",
        choices=("classification", *DEMO),
        help="detection: zoo-detector on scenes-det (box mAP, paper Table 3 shape); segmentation: "
        "zoo-segmenter on scenes-seg (mIoU, Table 4 shape)",
    )
    demo.add_argument(
        "--images", type=int, help=f"detection/segmentation: first N scenes val images (default {DENSE_DEMO_IMAGES})"
    )
    demo.add_argument("--out", help="results folder (default results/demo-MODEL)")
    _engine_args(demo)
    _script_args(demo)
    _stepwise_arg(demo, "greedy")  # the demo shows the combined worst case
    demo.set_defaults(func=cmd_demo)


def _demo_lm_command(sub) -> None:
    demo_lm = sub.add_parser(
        "demo-lm",
        help="run the embedded language default: SmolLM2-135M on public-domain text "
        "(last-word accuracy and perplexity, paper Table 5 shape)",
    )
    demo_lm.add_argument("--model", default="smollm2-135m", help="language zoo name or local model directory")
    demo_lm.add_argument("--out", help="results folder (default results/demo-lm-MODEL)")
    _engine_args(demo_lm)
    demo_lm.set_defaults(func=cmd_demo_lm)


def _report_command(sub) -> None:
    report = sub.add_parser(
        "report", help="re-render report.md, report.html and report.csv from stored results (no model runs)"
    )
    report.add_argument("results", nargs="+", metavar="RESULTS", help="results folder or results.json")
    report.set_defaults(func=cmd_report)


def _leaderboard_command(sub) -> None:
    board = sub.add_parser(
        "leaderboard", help="collect runs (several models, one dataset) into one table, as Markdown and HTML"
    )
    board.add_argument("results", nargs="*", metavar="RESULTS", help="results folders or files to add first")
    board.add_argument(
        "--db",
        default=str(Path("results") / "leaderboard.sqlite"),
        help="SQLite database of runs (default results/leaderboard.sqlite)",
    )
    board.add_argument("--out", help="folder for leaderboard.md and leaderboard.html (default: the database's)")
    board.add_argument("--dataset", help="only this dataset (its folder name or a prefix of its digest)")
    board.set_defaults(func=cmd_leaderboard)


def _train_zoo_command(sub) -> None:
    train_zoo = sub.add_parser(
        "train-zoo",
        help="train a controlled-zoo model (zoo-resnet, zoo-detector, "
        "zoo-segmenter) on the scenes data, CPU, reproducible from a seed",
    )
    train_zoo.add_argument("name", help="zoo model to train")
    train_zoo.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    train_zoo.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    train_zoo.add_argument(
        "--n-train", type=int, help="train on the first N images of the scenes train split (default: the recipe's)"
    )
    train_zoo.add_argument("--out", help="folder for NAME.safetensors and NAME.md (default: the package's zoo)")
    train_zoo.add_argument(
        "--init",
        help="start from: a zoo model's weights (zoo-resnet, zoo-segmenter, "
        "zoo-detector: its ResNet body; zoo-resnet for itself: all of it), a .safetensors "
        "file, or none (default: the recipe's; see docs/zoo.md)",
    )
    train_zoo.set_defaults(func=cmd_train_zoo)


def _train_command(sub) -> None:
    train = sub.add_parser(
        "train",
        help="fine-tune (or train) the zoo classifier with a fixed training pipeline or "
        "with mix training (a pipeline drawn per sample or per batch); same recipe either way",
    )
    train.add_argument("--model", default="zoo-resnet", help="model to train (default zoo-resnet)")
    train.add_argument(
        "--pipeline",
        default="reference",
        help="fixed training pipeline, spelled as for `diff`: reference (default), a YAML/JSON file, "
        "or NOISE=OPTION[+NOISE=OPTION...]",
    )
    train.add_argument(
        "--mix",
        action="append",
        metavar="FIELD=OPTION[:WEIGHT],...",
        help="mix training over this field's options, uniform or weighted, e.g. "
        "resize=pillow-bilinear,opencv-nearest:2 (repeatable, one field each)",
    )
    train.add_argument(
        "--per",
        choices=("sample", "batch"),
        help="draw the pipeline per sample (default, the paper's Algorithm 1) or per batch",
    )
    train.add_argument(
        "--init",
        default="zoo-resnet",
        help="start from: zoo-resnet (its trained weights: fine-tuning, default), random, or a weights file",
    )
    train.add_argument("--epochs", type=int, help="epochs (default: the recipe's, sysnoise.train.finetune.Recipe)")
    train.add_argument("--batch-size", type=int, help="batch size (default: the recipe's)")
    train.add_argument("--lr", type=float, help="one-cycle peak learning rate (default: the recipe's)")
    train.add_argument("--n-train", type=int, help="use the first N scenes-train images (default: all)")
    train.add_argument("--seed", type=int, help="seed of the order, augmentation and draws (default: the recipe's, 0)")
    train.add_argument(
        "--out",
        default=str(Path("results") / "train"),
        help="folder for NAME.safetensors and NAME.json (default results/train)",
    )
    train.add_argument("--name", help="file name (default: the model and what differs from its reference)")
    train.add_argument("--label", help="row label in `sysnoise matrix` (default: the name)")
    train.add_argument(
        "--robust",
        choices=ROBUSTNESS.names(),
        help="a general robustness method on top (the paper's Fig. 4): randaugment, augmix (torchvision "
        "v2), fgsm, pgd (adversarial training, eps 2/255); train/robust.py",
    )
    train.set_defaults(func=cmd_train)


def _matrix_command(sub) -> None:
    matrix = sub.add_parser(
        "matrix",
        help="train-by-test matrix (paper Tables 7/8): each model under the same "
        "test pipelines, rows trained x columns tested, mean and std per row",
    )
    matrix.add_argument(
        "--models",
        nargs="+",
        required=True,
        metavar="NAME_OR_WEIGHTS",
        help="zoo names or weights files written by `sysnoise train` (NAME.json beside them)",
    )
    matrix.add_argument(
        "--test",
        required=True,
        metavar="FIELD=OPTION,...",
        help="the test columns: the reference with FIELD (decoder, colour, resize, crop, precision) "
        "set to each OPTION, e.g. resize=pillow-bilinear,opencv-bilinear,opencv-nearest; or the "
        "paper's layouts: paper-resize (Table 7's six resizes), paper-decoder (Pillow, OpenCV, "
        "FFmpeg)",
    )
    matrix.add_argument("--data", required=True, help="dataset name (scenes), class-folder tree or list file")
    matrix.add_argument(
        "--reference", help="YAML/JSON pipeline the columns vary (default: the first model's reference)"
    )
    matrix.add_argument(
        "--out",
        default=str(Path("results") / "matrix"),
        help="folder for matrix.json/.md/.csv and each model's run (default results/matrix); reruns resume",
    )
    matrix.add_argument("--title", help="table title")
    _engine_args(matrix, noises=False)
    matrix.set_defaults(func=cmd_matrix)


def _fetch_photos_command(sub) -> None:
    fetch = sub.add_parser(
        "fetch-photos",
        help="download the photos-large corpus (about 500 real photographs from "
        "Debian packages, via apt-get download; nothing is installed) into the cache",
    )
    fetch.add_argument("--cache", metavar="DIR", help="cache folder (default $SYSNOISE_CACHE or ~/.cache/sysnoise)")
    fetch.set_defaults(func=cmd_fetch_photos)


def _list_command(sub) -> None:
    listing = sub.add_parser("list", help="print the noise catalogue and the model names")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_list)


def _diff_command(sub) -> None:
    diff = sub.add_parser(
        "diff",
        help="compare two pipelines stage by stage on some images (pixel statistics, "
        "first divergent stage, difference pictures), or find the pipeline a device runs",
    )
    diff.add_argument(
        "pipelines",
        nargs="*",
        metavar="PIPELINE",
        help="two of: reference | a YAML/JSON pipeline file | NOISE=OPTION[+NOISE=OPTION...] | OPTION "
        "| FIELD=VALUE (e.g. decoder=ffmpeg+resize=opencv-bilinear, input_size=256)",
    )
    diff.add_argument("--images", required=True, help="folder of images or a list file")
    _reference_args(diff, "--images")
    diff.add_argument(
        "--match",
        metavar="DIR",
        help="a device's pre-processing output (.npy/.png named like the images): name the closest pipeline",
    )
    diff.add_argument("--out", help="write diff.json (or match.json) and amplified difference pictures here")
    diff.add_argument(
        "--gain",
        type=float,
        help="difference amplification in the pictures (default: per image, the 99.5th percentile shows white)",
    )
    diff.add_argument("--limit", type=int, help="use only the first N images")
    diff.add_argument("--steps", type=int, default=3, help="--match: most catalogue changes to combine (default 3)")
    diff.set_defaults(func=cmd_diff)


def _generate_command(sub) -> None:
    gen = sub.add_parser(
        "generate",
        help="write a noised copy of a dataset (lossless PNG or .npy + list file); "
        "evaluate it later with `run --noise stored=DIR`",
    )
    gen.add_argument("--data", required=True, help="class-folder tree, folder of images, or list file")
    _reference_args(gen, "--data")
    gen.add_argument(
        "--pipeline", default="reference", help="the pipeline to apply, spelled as for `diff` (default: reference)"
    )
    gen.add_argument("--out", required=True, help="folder to write")
    gen.add_argument("--format", choices=["png", "npy"], default="png", help="png (lossless, uint8) or npy")
    gen.add_argument(
        "--stage",
        choices=["decode", "colour", "geometry", "normalise"],
        default="geometry",
        help="write the images after this stage (default geometry: the model's input pixels)",
    )
    gen.add_argument("--allow-outside-root", action="store_true", help="let a list file name files outside --data")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sysnoise", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"sysnoise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_command(sub)
    _demo_command(sub)
    _demo_lm_command(sub)
    _report_command(sub)
    _leaderboard_command(sub)
    _train_zoo_command(sub)
    _train_command(sub)
    _matrix_command(sub)
    _fetch_photos_command(sub)
    _list_command(sub)
    _diff_command(sub)
    _generate_command(sub)
    return parser


def _warning_format(previous):
    """sysnoise's own warnings (a translated spelling, class folders that are not the model's
    classes) as one plain line; other libraries' as `previous` formats them."""
    package = Path(__file__).resolve().parent

    def format_warning(message, category, filename, lineno, line=None) -> str:
        if Path(filename).resolve().is_relative_to(package):
            return f"sysnoise: warning: {message}\n"
        return previous(message, category, filename, lineno, line)

    return format_warning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = warnings.formatwarning
    warnings.formatwarning = _warning_format(previous)
    try:
        code = args.func(args)
    except (UserInputError, UnknownNameError) as err:
        print(f"sysnoise: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print("sysnoise: interrupted; completed chunks are kept, rerun the same command to resume", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130  # the shell's 128 + SIGTERM / SIGINT
    finally:
        warnings.formatwarning = previous  # main() called from Python leaves the caller's warnings as they were
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
