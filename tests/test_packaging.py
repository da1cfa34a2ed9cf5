"What a pip-installed kit needs: the presets, the bundled sample with its licence, and a README in sync."
import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import REPO
from ppad_nb.config import assets_path, read_presets


def test_packaged_presets_equal_the_top_level_file():
    assert (assets_path() / "settings.ini").read_text() == (REPO / "settings.ini").read_text()
    assert read_presets(assets_path() / "settings.ini") == read_presets(REPO / "settings.ini")


def test_bundled_sample_is_complete_and_attributed():
    root = assets_path() / "zhanglab-mini"
    readme, licence = (root / "README.md").read_text(), (root / "LICENSE.txt").read_text()
    assert "CC BY 4.0" in readme and "Kermany" in readme
    assert "creativecommons.org/licenses/by/4.0" in licence and "doi:10.17632/rscbjbr9sj" in licence
    manifest = (root / "manifest.csv").read_text().splitlines()
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert len(files) == 104
    assert sorted(line.split(",")[0] for line in manifest[1:]) == files


def test_package_data_is_declared():
    parser = (REPO / "pyproject.toml").read_text()
    assert 'ppad_nb = ["assets/*", "assets/**/*"]' in parser


def test_readme_is_generated_from_index_notebook(tmp_path):
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "markdown", str(REPO / "nbs" / "index.ipynb"),
                    "--output-dir", str(tmp_path), "--output", "README", "--log-level", "WARN"], check=True)
    generated = (tmp_path / "README.md").read_text().replace("](images/", "](nbs/images/")
    assert generated == (REPO / "README.md").read_text(), "README.md is stale: run `make readme`"


def test_only_widgets_imports_ipywidgets(tmp_path):
    """The command line (ppad-predict drawing its figure included), the bench and the library run without ipywidgets:
    only ppad_nb.widgets imports it, and nothing imports ppad_nb.cli."""
    parity = REPO / "tests" / "fixtures" / "parity-tiny"
    image = sorted((parity / "images").iterdir())[0]
    script = ("import sys, ppad_nb.cli, ppad_nb.bench, ppad_nb.console\n"
              f"ppad_nb.cli.predict(['--clip-weights', {str(parity / 'clip_tiny.pt')!r}, '--learner', {str(parity / 'learner_tiny.pt')!r},"
              f" '--device', 'cpu', {str(image)!r}, '--out', {str(tmp_path / 'figures')!r}])\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ipywidgets' or m == 'ppad_nb.widgets'))")
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, check=True)
    assert (tmp_path / "figures" / f"{image.stem}.png").read_bytes().startswith(b"\x89PNG")
    assert result.stdout.strip().splitlines()[-1] == "[]"
    script = "import sys, ppad_nb.bench, ppad_nb.console, ppad_nb.demo, ppad_nb.evaluate; print('ppad_nb.cli' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip() == "False"
    script = "import sys, ppad_nb.widgets; print('ipywidgets' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip() == "True"


def clean_venv(folder: Path) -> Path:
    "A venv that sees this environment's dependencies (torch and the rest, not installed twice) but not its ppad_nb: the kit's"
    "site-packages enter through a path line of a .pth file, so the .pth files in them (the editable install's finder) never run."
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True)
    kit = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (Path(own.stdout.strip()) / "kit-dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(kit)))
    return python


def test_a_wheel_from_a_clone_installs_into_a_clean_venv_and_runs(tmp_path):
    clone = tmp_path / "clone"
    shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns(".git", ".venv", "demo-output", "runs", "build", "dist", "*.egg-info",
                                                               "__pycache__", ".pytest_cache", "_proc", "_docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", ".", "-w", str(tmp_path / "dist")],
                   cwd=clone, check=True, capture_output=True)
    wheel, = (tmp_path / "dist").glob("ppad_nb-*.whl")
    python = clean_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed",
                    "--quiet", str(wheel)], check=True, capture_output=True, env=env)
    where = subprocess.run([python, "-c", "import ppad_nb; from ppad_nb.data import bundled_sample; print(ppad_nb.__file__); "
                            "print(len(bundled_sample('train').files))"], capture_output=True, text=True, cwd=tmp_path, env=env, check=True)
    module, shots = where.stdout.split()
    assert Path(module).is_relative_to(tmp_path / "venv"), module   # the wheel's ppad_nb, not the checkout's
    assert shots == "64"                                              # the bundled sample came with the wheel
    bin_dir, bundled = tmp_path / "venv" / "bin", Path(module).parent / "assets" / "zhanglab-mini" / "chest_xray"
    synth = subprocess.run([bin_dir / "ppad-synth", bundled / "train" / "NORMAL", "--out", tmp_path / "sas.png", "--count", "2"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert synth.returncode == 0 and (tmp_path / "sas.png").read_bytes()[:4] == b"\x89PNG", synth.stderr
    image = next((bundled / "test" / "PNEUMONIA").iterdir())
    parity = REPO / "tests" / "fixtures" / "parity-tiny"
    predict = subprocess.run([bin_dir / "ppad-predict", image, "--clip-weights", parity / "clip_tiny.pt", "--learner", parity / "learner_tiny.pt",
                              "--json"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert predict.returncode == 0, predict.stderr
    record = json.loads(predict.stdout)
    assert record["file"] == str(image) and 0 <= record["score"] <= 1 and record["decision"] in ("normal", "abnormal")
