"""The layering of docs/architecture.md, checked on the code: the project's import graph (read
with ast, nothing imported) has no cycle, no module imports a module of a higher layer, the
project's own modules are imported at module level (the few lazy places named below, each with
its reason), and no module imports another module's private names."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sysnoise"

# top to bottom: a module may import its own layer and the layers below it (module prefixes)
LAYERS = (
    ("sysnoise.cli", "sysnoise.__main__"),
    ("sysnoise.api",),
    (
        "sysnoise.measure",
        "sysnoise.catalogue",
        "sysnoise.train",
        "sysnoise.diffing",
        "sysnoise.generate",
        "sysnoise.gates",
    ),
    (
        "sysnoise.tasks.definition",
        "sysnoise.tasks.classification",
        "sysnoise.tasks.detection",
        "sysnoise.tasks.segmentation",
        "sysnoise.tasks.language",
        "sysnoise.tasks.coco_results",
        "sysnoise.tasks",
        "sysnoise.zoo",
    ),
    ("sysnoise.report", "sysnoise.result_view"),
    ("sysnoise.analysis",),
    ("sysnoise.engine",),
    ("sysnoise.models", "sysnoise.validate", "sysnoise.noises"),
    (
        "sysnoise.inference",
        "sysnoise.postprocess",
        "sysnoise.tasks.base",
        "sysnoise.tasks.detection_heads",
        "sysnoise.tasks.segmentation_heads",
        "sysnoise.language_models",
        "sysnoise.hf_vision",
        "sysnoise.loaded_model",
        "sysnoise.reference_sources",
        "sysnoise.environment",
    ),
    ("sysnoise.pipeline", "sysnoise.data"),
    (
        "sysnoise.errors",
        "sysnoise.registry",
        "sysnoise.extras",
        "sysnoise.listfile",
        "sysnoise.json_input",
        "sysnoise.progress",
        "sysnoise.subset",
        "sysnoise.versions",
        "sysnoise.weights",
        "sysnoise.schemas",
    ),
)
# in-function imports of the project's own modules, each for a reason
LAZY = {
    "sysnoise": "`import sysnoise` stays cheap: the public names load on first use",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("sysnoise",) + path.relative_to(PACKAGE).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = modules()


def owner(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def layer(module: str) -> int:
    matches = [
        (len(prefix), index)
        for index, group in enumerate(LAYERS)
        for prefix in group
        if module == prefix or module.startswith(prefix + ".")
    ]
    if module == "sysnoise":
        return 0
    assert matches, f"{module} is in no layer of docs/architecture.md: add it to LAYERS and the document"
    return max(matches)[1]


def imports(module: str):
    """(line, imported module, names, at module level) for each import of a project module."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base, [a.name]) for a in node.names]
        else:
            continue
        for target, names in targets:
            if target.split(".")[0] == "sysnoise" and owner(target) not in ("", module):
                yield node.lineno, owner(target), names, node.col_offset == 0


def graph() -> dict[str, set[str]]:
    return {m: {target for _, target, _, top in imports(m) if top} for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_import_cycles():
    edges, index, low, stack, on, cycles = graph(), {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    assert cycles == []


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{m} ({layer(m)}) -> {t} ({layer(t)})"
        for m, targets in graph().items()
        for t in targets
        if layer(t) < layer(m)
    ]
    assert upward == []


def test_own_modules_are_imported_at_module_level():
    inner = [
        f"{MODULES[m].relative_to(PACKAGE)}:{line} -> {target}"
        for m in MODULES
        if m not in LAZY
        for line, target, _, top in imports(m)
        if not top
    ]
    assert inner == []


def test_no_private_names_are_imported_across_modules():
    private = [
        f"{MODULES[m].relative_to(PACKAGE)}:{line} imports {target}.{name}"
        for m in MODULES
        for line, target, names, _ in imports(m)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


@pytest.mark.parametrize("module", ["sysnoise.noises", "sysnoise.engine.plan", "sysnoise.analysis.stats"])
def test_the_checks_see_real_edges(module):
    """The graph is not empty by accident: known imports are found."""
    assert graph()[module]
