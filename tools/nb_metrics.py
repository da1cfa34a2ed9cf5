"""Style figures of the chapters (issue 10): lines per exported cell, `test_eq(<bool>, True)`, machine paths in outputs."""
import json, re, statistics, sys
from pathlib import Path

PATH_IN_OUTPUT = re.compile(r"(/work/|/tmp/|/home/|/root/|ipython-input|/private/var/)")
BOOL_TRUE = re.compile(r"test_eq\((.*),\s*(True|False)\)\s*$")

def cell_source(cell): return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])

def is_exported(src): return bool(re.search(r"^#\|\s*export", src, re.M))

def code_lines(src): return [l for l in src.splitlines() if l.strip() and not l.strip().startswith("#|")]

def notebook_figures(path):
    "Figures for one notebook."
    nb = json.loads(Path(path).read_text())
    exported = [len(code_lines(cell_source(c))) for c in nb["cells"] if c["cell_type"] == "code" and is_exported(cell_source(c))]
    bools = sum(len([l for l in cell_source(c).splitlines() if BOOL_TRUE.search(l.strip())])
                for c in nb["cells"] if c["cell_type"] == "code")
    paths = []
    for i, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []):
            text = json.dumps(o)
            for m in PATH_IN_OUTPUT.finditer(text): paths.append((i, text[max(0, m.start()-30):m.end()+40]))
    return exported, bools, paths

if __name__ == "__main__":
    files = sys.argv[1:] or sorted(str(p) for p in Path("nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in str(p))
    everything = []
    for f in files:
        exported, bools, paths = notebook_figures(f)
        everything += exported
        med = statistics.median(exported) if exported else 0
        print(f"{f}: exported cells {len(exported)}, median {med} / max {max(exported, default=0)} lines, "
              f"over 30: {sum(n > 30 for n in exported)}; test_eq(..., True/False): {bools}; paths in outputs: {len(paths)}")
        for i, snippet in paths[:3]: print(f"    cell {i}: {snippet!r}")
    if everything:
        print(f"ALL: {len(everything)} exported cells, median {statistics.median(everything)}, max {max(everything)}, over 30: {sum(n > 30 for n in everything)}")
