"""Combined noise: which extra pipelines to run once the single-noise results are known, and how
to read their results.

Stepwise (the paper's Fig. 3): noises are added one at a time, each at one option, in the order
the user gives or greedily worst-first; step k is the reference with the options of steps 1..k
applied, and the report shows the cumulative delta after each step.

Deployment pipeline: the user writes down the system they deploy on. Its total delta is
attributed to the pipeline fields it changes, two ways: each change alone on the reference
(one-at-a-time) and the full deployment with that change undone (leave-one-out, the change's
effect given all the others). Where the two disagree the changes interact.

Pure functions over the noise catalogue, Pipelines and results dictionaries: no model here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sysnoise.errors import UserInputError
from sysnoise.noises import NOISES, Variant, get_noise, split_spec
from sysnoise.pipeline.spec import Pipeline

COMBINED = "combined"  # noise name of the stepwise variants
DEPLOY = "deploy"  # noise name of the deployment variants
GREEDY = "greedy"


@dataclass(frozen=True)
class Step:
    noise: str
    option: str


def effect(row: dict) -> float:
    """The number a variant is ranked and combined by: its delta on labeled data, else its flip
    rate (label-free data can only say how often the answer changed)."""
    return row["delta"] if row.get("delta") is not None else row["flip_rate"]


def effect_ci(row: dict) -> list[float] | None:
    return row["delta_ci"] if row.get("delta") is not None else row["flip_ci"]


def _badness(row: dict) -> tuple:
    # Ties on effect and flips (common on small data) go to the option that changes the outputs
    # on more samples: it is the likelier to hurt on other data.
    return (effect(row), row["flip_rate"], -row["identical"] if row["identical"] is not None else 0)


def combinable(row: dict) -> bool:
    """A catalogue noise's option that is noise: configuration errors (channels swapped) are reported
    apart and left out of the worst case, which combines systems that are each set up correctly;
    variants from outside the catalogue (a user's ONNX file) have no option to apply."""
    if row["noise"] not in NOISES:
        return False
    noise = get_noise(row["noise"])
    if noise.stage == "misconfiguration":
        return False
    entry = noise.registry.get(row["option"]) if row["option"] in noise.registry else None
    return entry is None or entry.meta.get("kind") != "misconfiguration"


def worst_rows(results: dict) -> dict[str, dict]:
    """Per measured noise, the variant row of its worst option (largest effect, then flip rate,
    then fewest bit-identical outputs); the first such option on a full tie. Only options that
    can be combined count (see combinable)."""
    worst: dict[str, dict] = {}
    for row in filter(combinable, results["variants"]):
        best = worst.get(row["noise"])
        if best is None or _badness(row) > _badness(best):
            worst[row["noise"]] = row
    return worst


def _ranked(results: dict) -> list[str]:
    """Measured noises, the worst single effect first. Ties keep the order the noises were
    measured in, so the order is reproducible."""
    worst = worst_rows(results)
    order = [n["name"] for n in results["noises"] if n["name"] in worst]
    return sorted(order, key=lambda name: tuple(-v for v in _badness(worst[name])) + (order.index(name),))


def greedy_steps(results: dict) -> list[Step]:
    """Every measured noise at its worst option, the worst first. Noises that set the same Pipeline
    field outright (int8 and precision both set `precision`) cannot both be in one pipeline: the
    worse one is the step, the other is left out (left_out says which and why)."""
    worst = worst_rows(results)
    steps, owners = [], set()
    for name in _ranked(results):
        noise = get_noise(name)
        if noise.exclusive:
            if noise.field in owners:
                continue
            owners.add(noise.field)
        steps.append(Step(name, worst[name]["option"]))
    return steps


def left_out(results: dict, steps: list[Step]) -> list[dict]:
    """Measured noises a greedy combination does not add: each shares its Pipeline field with a
    step whose option did worse on its own."""
    worst = worst_rows(results)
    stepped = {get_noise(s.noise).field: s for s in steps if get_noise(s.noise).exclusive}
    out = []
    for name in _ranked(results):
        noise = get_noise(name)
        kept = stepped.get(noise.field) if noise.exclusive else None
        if kept is not None and kept.noise != name:
            out.append(
                {
                    "noise": name,
                    "option": worst[name]["option"],
                    "field": noise.field,
                    "kept_noise": kept.noise,
                    "kept_option": kept.option,
                }
            )
    return out


def _parse(specs: list[str], measured: set[str]) -> list[tuple[str, str | None]]:
    """(noise, option or None) per spec, checked: known noise and option, a noise without an option
    was measured on its own (it needs a worst option), no noise twice."""
    parsed: list[tuple[str, str | None]] = []
    for spec in specs:
        name, options = split_spec(spec)
        if options and len(options) > 1:
            raise UserInputError(f"stepwise: {spec!r} names {len(options)} options; a step takes one: {name}=OPTION")
        option = options[0] if options else None
        noise = get_noise(name)
        if option and option not in noise.options():
            raise UserInputError(
                f"stepwise: noise {name!r} has no option {option!r}; options: {', '.join(noise.options())}"
            )
        if not option and name not in measured:
            raise UserInputError(
                f"stepwise: noise {name!r} is not measured on its own (not asked for, not applicable to this model, "
                f"or a configuration error), so it has no worst option; measure it with --noise {name}, or name an "
                f"option: {name}=OPTION"
            )
        if any(seen == name for seen, _ in parsed):
            raise UserInputError(f"stepwise: noise {name!r} is named twice")
        clash = [
            seen
            for seen, _ in parsed
            if noise.exclusive and get_noise(seen).exclusive and get_noise(seen).field == noise.field
        ]
        if clash:
            raise UserInputError(
                f"stepwise: {clash[0]!r} and {name!r} both set the pipeline's {noise.field!r} field, "
                "and a pipeline holds one value: name one of them"
            )
        parsed.append((name, option or None))
    return parsed


def check_stepwise(stepwise, measured: set[str]) -> None:
    """Refuse a bad request before any model runs. measured: the noises with single variants."""
    if stepwise is None or stepwise == GREEDY:
        return
    if isinstance(stepwise, str):
        raise UserInputError(f"stepwise must be {GREEDY!r} or a list of noise names, got {stepwise!r}")
    _parse(list(stepwise), measured)


def named_steps(results: dict, specs: list[str]) -> list[Step]:
    """Steps in the user's order: 'resize' takes that noise's worst measured option,
    'resize=opencv-area' names the option."""
    worst = worst_rows(results)
    return [Step(name, option or worst[name]["option"]) for name, option in _parse(specs, set(worst))]


def choose_steps(results: dict, stepwise: str | list[str]) -> list[Step]:
    check_stepwise(stepwise, set(worst_rows(results)))
    return greedy_steps(results) if stepwise == GREEDY else named_steps(results, list(stepwise))


def step_option(index: int, step: Step) -> str:
    return f"step{index}:+{step.noise}"


def stepwise_variants(reference: Pipeline, steps: list[Step]) -> list[Variant]:
    """Variant k: the reference with the options of steps 1..k applied, in order."""
    variants, pipeline = [], reference
    for index, step in enumerate(steps, 1):
        pipeline = get_noise(step.noise).apply(pipeline, step.option)
        variants.append(Variant(COMBINED, step_option(index, step), pipeline))
    return variants


def stepwise_table(steps: list[Step], rows: dict[str, dict], order: str, omitted: list[dict] | None = None) -> dict:
    """The stepwise section of the results: per step, what was added and the cumulative stats;
    `left_out`: measured noises not added (a shared field, see left_out). rows: variant id ->
    variant row of the combined pass."""
    table = []
    for index, step in enumerate(steps, 1):
        row = rows[f"{COMBINED}/{step_option(index, step)}"]
        table.append({"step": index, "added_noise": step.noise, "added_option": step.option, **row})
    return {"order": order, "steps": table, "combines": [s.noise for s in steps], "left_out": omitted or []}


def deploy_changes(reference: Pipeline, deploy: Pipeline) -> list[str]:
    changed = list(reference.diff(deploy))
    if not changed:
        raise UserInputError("the deployment pipeline is identical to the reference pipeline: nothing to measure")
    return changed


def deploy_variants(reference: Pipeline, deploy: Pipeline) -> list[Variant]:
    """The full deployment, and for more than one change each change alone and each left out."""
    changed = deploy_changes(reference, deploy)
    variants = [Variant(DEPLOY, "full", deploy)]
    if len(changed) > 1:
        for name in changed:
            variants.append(Variant(DEPLOY, f"only:{name}", reference.replace(**{name: getattr(deploy, name)})))
            variants.append(Variant(DEPLOY, f"without:{name}", deploy.replace(**{name: getattr(reference, name)})))
    return variants


def attribution(reference: Pipeline, deploy: Pipeline, rows: dict[str, dict]) -> dict:
    """Split the deployment's total effect over the fields it changes.

    alone: the change applied on its own to the reference. last: the total minus the deployment
    with this change undone, i.e. what the change adds when everything else is already deployed.
    interaction: the total minus the sum of the 'alone' effects (0 when effects add up).
    """
    changed = deploy_changes(reference, deploy)
    full = rows[f"{DEPLOY}/full"]
    total = effect(full)
    changes = []
    for name in changed:
        alone = rows.get(f"{DEPLOY}/only:{name}", full)  # a single change is its own 'alone'
        without = rows.get(f"{DEPLOY}/without:{name}")
        changes.append(
            {
                "field": name,
                "reference": reference.to_dict()[name],
                "deploy": deploy.to_dict()[name],
                "alone_id": alone["id"],
                "effect_alone": effect(alone),
                "effect_alone_ci": effect_ci(alone),
                "alone_distinguishable": alone["distinguishable_from_zero"],
                "effect_last": total - effect(without) if without is not None else total,
            }
        )
    return {
        "pipeline": deploy.to_dict(),
        "total": full,
        "changes": changes,
        "interaction": total - sum(c["effect_alone"] for c in changes),
        "variants": [row for key, row in rows.items() if key.startswith(f"{DEPLOY}/")],
    }
