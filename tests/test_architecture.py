"""The floors of docs/architecture.md: no module imports from a floor above its own (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import motionsep

PACKAGE = Path(motionsep.__file__).parent
FLOORS = {
    0: ("word_tokenizer", "testing"),
    1: ("errors", "checkpoint", "video", "config", "data", "stats", "tracks", "__init__"),
    2: ("families", "models"),
    3: ("methods", "adapters", "highway", "pli", "losses", "record", "encoding", "heads", "parts", "memory"),
    4: ("train", "generate", "validation", "export", "noise_prior", "inspection", "probe"),
    5: ("evaluation", "motion_fidelity", "toy", "bench", "demo"),
    6: ("cli", "ui", "__main__"),
}
FLOOR_OF = {name: floor for floor, names in FLOORS.items() for name in names}


def _floor(module: str) -> int:
    """module: a dotted name inside motionsep ('toy.world', 'train')."""
    return FLOOR_OF[module.split(".")[0]]


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _imports(path: Path) -> list[str]:
    """Every motionsep module `path` imports, at the top or inside a function, as dotted names."""
    package = _module_name(path).split(".")[:-1]  # the package the module sits in (toy/__init__.py: toy)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = [*base, *(node.module.split(".") if node.module else [])]
            found.append(".".join(target) if target else "__init__")  # `from . import x`: the package root
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("motionsep."):
            found.append(node.module.removeprefix("motionsep."))
    return found


def test_every_module_has_a_floor():
    modules = {_module_name(p).split(".")[0] for p in PACKAGE.rglob("*.py")}
    assert modules <= set(FLOOR_OF), f"modules without a floor in docs/architecture.md: {modules - set(FLOOR_OF)}"


def test_no_import_points_up():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        for imported in _imports(path):
            if _floor(imported) > _floor(importer):
                upward.append(f"{importer} (floor {_floor(importer)}) imports {imported} (floor {_floor(imported)})")
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    """No module reaches itself through imports, on one floor or across (lazy imports included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        graph.setdefault(importer, set()).update(i for i in _imports(path) if i != importer)
    modules = set(graph)

    def resolve(name: str) -> str:  # `from .toy import x` names the package: its __init__
        return name if name in modules else f"{name}.__init__" if f"{name}.__init__" in modules else name

    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(resolve(i) for i in graph.get(module, ())):
            if state.get(imported) == 1:
                circles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported in modules and not state.get(imported):
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(modules):
        if not state.get(module):
            visit(module, [module])
    assert not circles, "\n".join(circles)


LAB = ("toy", "bench", "demo")  # the shapes world, its pretraining, the benches and the demo


def test_the_library_imports_nothing_from_its_lab():
    """The core (families, methods, trainer, generate, export, evaluation) works without the lab; the lab uses the
    core. Only the command line and the UI, which offer both, sit above them."""
    reaching = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        if importer.split(".")[0] in (*LAB, "cli", "ui", "__main__"):
            continue
        reaching += [f"{importer} imports {i}" for i in _imports(path) if i.split(".")[0] in LAB]
    assert not reaching, "\n".join(reaching)
