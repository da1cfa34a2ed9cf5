"What a pip-installed kit needs: the presets, the bundled sample with its licence, and a README in sync."
import configparser
import subprocess
import sys

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
