"""The package layout: the core that notebooks import stays small and never reaches into the maintainers' tools."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "condiff"
TOOLS = PACKAGE / "tools"
ENTRY_POINT = PACKAGE / "__main__.py"  # the program's entry point: the full CLI, tools included
CORE = sorted(p for p in PACKAGE.rglob("*.py") if TOOLS not in p.parents and p != ENTRY_POINT)
# The bound of the library the notebooks import and teach (data, models, pipeline, training loop with its
# run folder, evaluation, plotting). The command line is a program over it, in tools/ (commands.py).
# Above 2,000 for three things written out rather than compressed: the Denoiser module with the loader of
# older two-model checkpoints (train.py, models.py), the evaluator's count head with the renderer of any
# multiset of objects (evaluate.py, data/scenes.py), and the run folder's refusals that keep a user's files
# (runfolder.py: a folder that is not a run, --fresh setting the old run aside), the warm restart that
# records the runs behind its weights (train.py: init_from, legs) and the failures named per image
# (evaluate.py: scene_errors, which notebooks 3-6 print under their figures, binding errors included), and
# the warm restart that widens the label MLP without changing what it computes (train.py: widen_label_mlp),
# and the warm restart that keeps the average it starts from (train.py, recipes.py: ema_warmup).
MAX_CORE_LINES = 2_440


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, as absolute dotted names (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # from condiff import tools
    return names


def test_the_core_never_imports_the_tools():
    offenders = {str(p.relative_to(PACKAGE.parent)): sorted(m for m in imported_modules(p)
                                                             if m == "condiff.tools" or m.startswith("condiff.tools."))
                 for p in CORE}
    assert not {k: v for k, v in offenders.items() if v}, "core modules import condiff.tools"


def test_the_import_check_can_fail():
    """The resolver sees relative imports: the entry point does import the tools."""
    assert "condiff.tools.cli" in imported_modules(ENTRY_POINT)
    assert "condiff.runinfo" in imported_modules(PACKAGE / "train.py")


def test_the_core_stays_within_its_line_budget():
    lines = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in CORE}
    assert sum(lines.values()) <= MAX_CORE_LINES, f"core is {sum(lines.values())} lines: {lines}"
    assert "train.py" in lines and "data/scenes.py" in lines and not any(k.startswith("tools") for k in lines)
