#!/usr/bin/env python
"""Execute notebooks in full (IN_TEST unset) and save their outputs, so that readers see pictures on GitHub.

Cells flagged `#| slow`, `#| notest` or `#| gpu` are skipped (their work is too long for routine runs).
Usage: python tools/run_notebooks.py [nbs/01_data.ipynb ...]   (default: every notebook under nbs/)
Run `nbdev-clean` afterwards (`make notebooks` does both).
"""
import os, re, sys, time
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

SKIP = re.compile(r"^#\|\s*(slow|notest|gpu)\b", re.M)

def run(path: Path) -> bool:
    nb = read_nb(path)
    shell = CaptureShell(path, mpl_format="png")
    start = time.time()
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        shell.run_all(nb, exc_stop=True, preproc=lambda cell: cell.cell_type != "code" or bool(SKIP.search(cell.source)))
    except Exception as e:
        print(f"{path}: FAILED ({type(e).__name__}: {e})", file=sys.stderr)
        return False
    finally:
        os.chdir(cwd)
    write_nb(nb, path)
    print(f"{path}: ran in {time.time() - start:.0f} s")
    return True

if __name__ == "__main__":
    os.environ.pop("IN_TEST", None)
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("nbs").rglob("*.ipynb"))
    ok = [run(p.resolve()) for p in paths if ".ipynb_checkpoints" not in p.parts]
    sys.exit(0 if all(ok) else 1)
