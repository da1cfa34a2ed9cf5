"Shared helpers for the pytest suite: run the console scripts as a user would, and build data layouts."
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BIN = Path(sys.executable).parent


def run(command, *args, cwd=None):
    "Run a console script (from this environment's bin/) or a data script; return the CompletedProcess."
    program = [str(BIN / command)] if (BIN / command).exists() else [sys.executable, str(REPO / "data_scripts" / command)]
    return subprocess.run(program + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600)


def assert_user_error(result, *fragments):
    "A user error: non-zero exit, one line on stderr naming what is wrong, no traceback."
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if ": warning: " not in line]  # warnings are lines of their own
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and ": error: " in lines[0]
    for fragment in fragments: assert str(fragment) in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def tiny():
    "The random-initialised tiny CLIP (its warning silenced), one per test module."
    import warnings
    from ppad_nb.model import RandomWeightsWarning, load_clip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return load_clip("random:tiny")


@pytest.fixture(scope="session")
def sample():
    "The bundled real sample: (train ImageSet, test ImageSet)."
    from ppad_nb.data import bundled_sample
    return bundled_sample("train"), bundled_sample("test")


def copy_images(files, folder: Path, suffix=None):
    "Copy `files` into `folder` (converting to `suffix`'s format when given); return the new paths."
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for f in files:
        target = folder / (f.stem + (suffix or f.suffix))
        if suffix and suffix != f.suffix: Image.open(f).convert("L").save(target)
        else: shutil.copy(f, target)
        made.append(target)
    return made


class Result:
    "What `subprocess.run` returns, for a console script run in-process."
    def __init__(self, returncode, stdout, stderr): self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def call(command, *args, prog="ppad-x", ignore=None):
    "Run a console script's function in this process (no interpreter start-up), as `run` does in a subprocess;"
    "`ignore`: the warnings left unshown (default: the random-CLIP warning)."
    import contextlib, io, warnings
    from ppad_nb.console import run_script
    from ppad_nb.model import RandomWeightsWarning
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore", ignore or RandomWeightsWarning)
        status = run_script(command, [str(a) for a in args], prog=prog)
    return Result(status, out.getvalue(), err.getvalue())


def sample_folder(folder: Path, layout: str, part: int) -> Path:
    "Half `part` of the bundled sample (no image in both halves) in the ZhangLab (SQUID) or VinDr-CXR (data.json) layout."
    from ppad_nb.data import bundled_sample
    train, test = bundled_sample("train"), bundled_sample("test")
    groups = {("train", "0"): train.files[part::2], ("test", "0"): test.normals()[part::2],
              ("test", "1"): [f for f, label in zip(test.files, test.labels) if label][part::2]}
    squid = {("train", "0"): "train/normal_256", ("test", "0"): "test/normal_256", ("test", "1"): "test/pneumonia_256"}
    index = {"train": {}, "test": {}}
    for key, files in groups.items():
        target = folder / (squid[key] if layout == "zhanglab" else "images")
        target.mkdir(parents=True, exist_ok=True)
        for f in files: shutil.copy(f, target / Path(f).name)
        index[key[0]][key[1]] = [Path(f).name for f in files]
    if layout == "vindr": (folder / "data.json").write_text(json.dumps(index))
    return folder
