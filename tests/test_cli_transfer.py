"The command line of issue 20's transfer and checkpoint tables: ppad-evaluate --layout, ppad-reproduce --transfer and --checkpoints."
import csv
import json

import pytest
from conftest import assert_user_error, call, sample_folder

from ppad_nb import cli
from ppad_nb.reports import read_report

TINY = ("--clip-weights", "random:tiny", "--device", "cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "A demo run (random CLIP, 1 epoch) and a folder of the other half of the sample in VinDr-CXR's data.json layout."
    base = tmp_path_factory.mktemp("cli-transfer")
    result = call(cli.train_command, "--preset", "demo", *TINY, "--epochs", "1", "--shots", "16", "--batch-size", "16", "--out", base / "run", prog="ppad-train")
    assert result.returncode == 0, result.stderr
    return base, base / "run", sample_folder(base / "vindr-half", "vindr", 1)


def test_evaluate_layout_writes_a_report_of_the_run_on_other_data(trained):
    base, run, other = trained
    result = call(cli.evaluate_command, "--run", run, "--data", other, "--layout", "vindr", "--out", base / "on-vindr", prog="ppad-evaluate")
    assert result.returncode == 0, result.stderr
    report = read_report(base / "on-vindr")
    metrics = json.loads((base / "on-vindr" / "metrics.json").read_text())
    assert len(report["scores"]) == 20 and metrics["transfer"] == {"trained_on": "demo", "layout": "vindr", "size": 256}
    assert metrics["protocol"]["labels"] == "normal-only" and metrics["protocol"]["shots"]["count"] == 16  # the run's card, not the test set's
    assert f"on 20 images of {other} (vindr" in result.stdout and not (run / "report").exists()  # the run's own report folder untouched


@pytest.mark.parametrize("options, fragment", [
    (("--layout", "vindr", "--data", "{other}"), "give --run, --data and --out"),
    (("--layout", "vindr", "--run", "{run}", "--data", "{other}"), "give --run, --data and --out"),
    (("--layout", "vindr", "--run", "{run}", "--data", "{other}", "--out", "{base}/x", "--checkpoint", "validated"), "leave out --learner, --preset and --checkpoint"),
    (("--layout", "zhanglab", "--run", "{run}", "--data", "{other}", "--out", "{base}/y"), "normal_256: folder not found"),
    (("--layout", "vindr", "--run", "{base}", "--data", "{other}", "--out", "{base}/z"), "not a run folder (no run.json)"),
    (("--layout", "vindr", "--run", "{run}", "--data", "{other}", "--out", "{run}/report", "--force"), "lies inside the run"),
])
def test_hostile_evaluate_layout_is_one_line_and_makes_nothing(trained, options, fragment):
    base, run, other = trained
    args = [o.format(base=base, run=run, other=other) for o in options]
    result = call(cli.evaluate_command, *args, prog="ppad-evaluate")
    assert_user_error(result, fragment)
    assert not any((base / name).exists() for name in ("x", "y", "z"))


def test_reproduce_transfer_and_checkpoints_refuse_before_any_work(tmp_path):
    for args, fragment in [(("--transfer", "demo", "--data", tmp_path), "--transfer reads each preset's data under $PPAD_DATA"),
                           (("--transfer", "demo", "--checkpoints"), "leave out --checkpoints"),
                           (("--transfer", "demo", "--methods", "chexzero"), "needs a trained method"),
                           ((), "give --preset (one preset's table) or --transfer"),
                           (("--preset", "demo", "--checkpoints", "--validate-every", "0"), "--validate-every")]:
        result = call(cli.reproduce_command, *args, *TINY, "--out", tmp_path / "out", prog="ppad-reproduce")
        assert_user_error(result, fragment)
        assert not (tmp_path / "out").exists()


def test_reproduce_checkpoints_writes_three_columns(tmp_path):
    out = tmp_path / "out"
    result = call(cli.reproduce_command, "--preset", "demo", *TINY, "--checkpoints", "--validate-every", "1", "--epochs", "2", "--shots", "16",
                  "--batch-size", "16", "--seeds", "0", "--out", out, prog="ppad-reproduce")
    assert result.returncode == 0, result.stderr
    with open(out / "checkpoints" / "checkpoints.csv", newline="") as f: rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [("ppad", "0")]
    assert float(rows[0]["oracle_auc_percent"]) >= float(rows[0]["last_auc_percent"])  # chosen on the test set: never below the last epoch
    assert "oracle" in (out / "checkpoints" / "checkpoints.md").read_text() and "checkpoints.md" in result.stdout
