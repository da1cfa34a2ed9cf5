"Imports run one way (DESIGN.md): a module of the kit imports only modules of chapters before its own, and nothing imports cli."
import ast
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def chapter_order() -> list:
    "The kit's modules in the order of their chapters (the notebooks' file names), from each notebook's `default_exp`."
    order = []
    for notebook in sorted((REPO / "nbs").glob("[0-9]*.ipynb")):
        text = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code")
        found = re.search(r"^#\|\s*default_exp\s+(\w+)", text, re.M)
        if found: order.append(found[1])
    return order


def kit_imports(module: str, source: str | None = None) -> set:
    "The kit's modules that `module` (or `source`) imports anywhere, at the top or inside a function."
    tree = ast.parse(source if source is not None else (REPO / "ppad_nb" / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1: names.add((node.module or "").split(".")[0] or None)
            elif (node.module or "").startswith("ppad_nb."): names.add(node.module.split(".")[1])
            elif node.module == "ppad_nb": names.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ppad_nb."))
    return names - {None, "_modidx"}


def test_the_chapter_order_is_read():
    order = chapter_order()
    assert order[:3] == ["safety", "config", "console"], order
    assert {"data", "model", "train", "evaluate", "cli", "bench"} <= set(order), order


def test_modules_import_only_earlier_chapters():
    order = chapter_order()
    backwards = {m: sorted(i for i in kit_imports(m) if i in order and order.index(i) >= order.index(m)) for m in order}
    assert {m: b for m, b in backwards.items() if b} == {}


def test_nothing_imports_cli():
    importers = sorted(m for m in chapter_order() if "cli" in kit_imports(m))
    scripts = sorted(p.name for p in (REPO / "data_scripts").glob("*.py") if re.search(r"ppad_nb(\.cli|\s+import\s+cli)", p.read_text()))
    assert (importers, scripts) == ([], [])


def test_kit_imports_sees_every_spelling():
    "The parser must see an import inside a function and each spelling of a kit import, or the order test could not fail."
    source = ("from .data import x\nimport ppad_nb.model\nfrom ppad_nb import train\n"
              "def f():\n    from ppad_nb.bench import budget\n    from .cli import main\nimport numpy\nfrom . import _modidx\n")
    assert kit_imports("any", source) == {"data", "model", "train", "bench", "cli"}
