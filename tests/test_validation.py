"ppad-train --validate-every N and ppad-evaluate --checkpoint validated: a checkpoint chosen on held-out normals with synthesized anomalies, never on test labels."
import csv
import json

import pytest
from safetensors.torch import load_file

from conftest import assert_user_error, run
from ppad_nb.model import load_clip
from ppad_nb.runs import read_run_checkpoint, train

SMALL = ["--preset", "demo", "--clip-weights", "random:tiny", "--shots", 48, "--batch-size", 16]


@pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning")
def test_validated_checkpoint_is_the_best_validation_epoch(tmp_path):
    run_dir = tmp_path / "run"
    trained = run("ppad-train", *SMALL, "--epochs", 4, "--validate-every", 2, "--out", run_dir)
    assert trained.returncode == 0, trained.stderr
    with open(run_dir / "validation.csv") as f: rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [2, 4] and all(0 <= float(r["auc"]) <= 1 and float(r["loss"]) > 0 for r in rows)
    best = max(rows, key=lambda r: (float(r["auc"]), -int(r["epoch"])))["epoch"]
    assert f"best epoch {best}," in trained.stdout
    # the same seed stopped after the best epoch: its checkpoint holds the prompts of that epoch
    train("demo", clip=load_clip("random:tiny"), seed=0, out=tmp_path / "at_best", progress=False, stop_after=int(best), epochs=4, shots=48, batch_size=16)
    at_best, kept = read_run_checkpoint(tmp_path / "at_best"), load_file(run_dir / "learner-validated.safetensors")
    assert at_best["epoch"] == int(best)
    for name in ("ctx", "mask_embedding"): assert kept[name].equal(at_best[name]), name

    validated = run("ppad-evaluate", "--run", run_dir, "--checkpoint", "validated")
    assert validated.returncode == 0, validated.stderr
    report = json.loads((run_dir / "report-validated" / "metrics.json").read_text())
    assert report["checkpoint"] == "validated" and report["learner"].endswith("learner-validated.safetensors")
    assert not (run_dir / "report").exists()  # the last epoch's report (the released default, RUN/report) is left as it was

    # starting the run again removes both of its reports: a validated report of the replaced run must not survive it
    again = run("ppad-train", *SMALL, "--epochs", 1, "--out", run_dir, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert not (run_dir / "report-validated").exists() and not (run_dir / "validation.csv").exists()


@pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning")
def test_validated_checkpoint_refused_for_a_run_without_validation(tmp_path):
    train("demo", clip=load_clip("random:tiny"), seed=0, out=tmp_path / "plain", progress=False, epochs=1, shots=48, batch_size=16)
    assert_user_error(run("ppad-evaluate", "--run", tmp_path / "plain", "--checkpoint", "validated"), "was trained without validation")
    assert not (tmp_path / "plain" / "report-validated").exists() and not (tmp_path / "plain" / "report").exists()


@pytest.mark.parametrize("options, message", [
    (["--validate-every", 0, "--shots", 48], "--validate-every must be at least 1"),
    (["--validate-every", 1, "--shots", 64], "has no normal training image beyond the shots"),
])
def test_hostile_validation_options_refused_before_anything_is_made(tmp_path, options, message):
    out = tmp_path / "never"
    assert_user_error(run("ppad-train", "--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, *options, "--out", out), message)
    assert not out.exists()
