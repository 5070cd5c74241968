"""The package's plan, held: every import runs down the layers, and the two workers (streams and
notifiers) never import each other. The README's Layout section draws the same plan."""

from __future__ import annotations

import ast
from pathlib import Path

import goldenhour

ROOT = Path(goldenhour.__file__).parent

# Lower numbers are lower layers; a module may import its own wing and any lower layer.
LAYERS = {
    "contracts": 0,
    "infra": 1,
    "wording": 2,
    "streams": 3,
    "notifiers": 3,
    "reports": 3,
    "services": 4,
    "dev": 5,
    "demo": 6,
    "bench": 7,
    "chaos": 7,
    "cli": 8,
    "__main__": 9,
}


def wing(module: str) -> str:
    return module.split(".")[1]


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("goldenhour."):
            found.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("goldenhour.")]
    return found


def test_every_module_is_in_a_wing_of_the_plan() -> None:
    wings = {p.relative_to(ROOT).with_suffix("").parts[0] for p in ROOT.rglob("*.py")}
    assert wings - {"__init__"} == set(LAYERS)


def test_imports_run_down_the_layers() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        mine = path.relative_to(ROOT).with_suffix("").parts[0]
        if mine == "__init__":
            continue
        for line, module in imports(path):
            theirs = wing(module)
            if theirs != mine and LAYERS[theirs] >= LAYERS[mine]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    assert wrong == []
