"""The floors of docs/architecture.md: no module imports from a floor above its own (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import motionsep

PACKAGE = Path(motionsep.__file__).parent
FLOORS = {
    0: ("word_tokenizer", "testing"),
    1: ("errors", "checkpoint", "video", "config", "data", "stats", "__init__"),
    2: ("models",),
    3: ("methods", "adapters", "highway", "pli", "losses", "record"),
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
