"ppad-reproduce: every seed and method, the paper-format table, and restarts that keep finished work."
import csv
import json

import pytest

from conftest import assert_user_error, run
from ppad_nb.model import load_clip
from ppad_nb.runs import train

ARGS = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 2, "--shots", 16, "--batch-size", 16]


def test_two_seeds_two_methods_table_and_restart(tmp_path):
    out = tmp_path / "reproduce"
    first = run("ppad-reproduce", *ARGS, "--seeds", 0, 1, "--methods", "ppad", "coop", "--out", out)
    assert first.returncode == 0, first.stderr
    table = (out / "table.md").read_text()
    assert "| ppad | 2 |" in table and "| coop | 2 |" in table and "randomly initialised CLIP" in table
    with open(out / "table.csv") as f: rows = list(csv.DictReader(f))
    assert [(r["method"], r["metric"], r["seeds"]) for r in rows] == [(m, k, "2") for m in ("ppad", "coop") for k in ("acc", "auc", "f1")] \
        + [("coop", "auc_minus_ppad", "2")]
    learners = {p: p.stat().st_mtime_ns for p in out.rglob("learner.safetensors")}
    reports = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    assert len(learners) == 4 and len(reports) == 4

    again = run("ppad-reproduce", *ARGS, "--seeds", 0, 1, "--methods", "ppad", "coop", "--out", out)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished run kept") == 4 and again.stdout.count("report kept") == 4
    assert "training" not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("learner.safetensors")} == learners
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == reports
    assert (out / "table.md").read_text() == table


@pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning")
def test_interrupted_seed_is_resumed_not_restarted(tmp_path):
    out = tmp_path / "reproduce"
    # a run stopped after its first epoch, as an interruption leaves it
    train("demo", clip=load_clip("random:tiny"), seed=1, out=out / "ppad" / "seed1", stop_after=1, progress=False,
          epochs=2, shots=16, batch_size=16)
    result = run("ppad-reproduce", *ARGS, "--seeds", 0, 1, "--methods", "ppad", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "ppad seed 0: training" in result.stdout and "ppad seed 1: resuming from epoch 1" in result.stdout


def test_zero_shot_baseline_has_no_seeds(tmp_path):
    out = tmp_path / "zero"
    result = run("ppad-reproduce", "--preset", "demo", "--clip-weights", "random:tiny", "--methods", "chexzero", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "| chexzero | 1 |" in (out / "table.md").read_text()
    assert not (out / "chexzero" / "learner.safetensors").exists() and (out / "chexzero" / "report" / "metrics.json").is_file()


# what decides whether a finished run or report is reused (issue 9): the zero-shot prompts and the split file

SMALL = dict(epochs=1, shots=16, batch_size=16)


@pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning")
def test_zero_shot_report_is_not_reused_with_other_prompts(tmp_path):
    from ppad_nb.baselines import reproduce
    from ppad_nb.safety import PPADError
    tiny, out = load_clip("random:tiny"), tmp_path / "out"
    reproduce("demo", clip=tiny, methods=("chexzero",), out=out, quiet=True)
    metrics = out / "chexzero" / "report" / "metrics.json"
    record = json.loads(metrics.read_text())
    assert record["made_with"]["prompts"][4] == ["normal .", "pneumonia ."]  # the prompts actually used, decoded from the tokens
    record["made_with"]["prompts"] = [["normal", "pneumonia"]] * 5        # as a report made with the VinDr-CXR prompts
    metrics.write_text(json.dumps(record))
    with pytest.raises(PPADError, match=r"was made with prompts = \[\['normal', 'pneumonia'\].*; pass --overwrite"):
        reproduce("demo", clip=tiny, methods=("chexzero",), out=out, quiet=True)
    reproduce("demo", clip=tiny, methods=("chexzero",), out=out, quiet=True, overwrite=True)
    assert json.loads(metrics.read_text())["made_with"]["prompts"][4] == ["normal .", "pneumonia ."]


@pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning")
def test_run_is_not_reused_with_another_split_file(tmp_path):
    from ppad_nb.baselines import reproduce
    from ppad_nb.safety import PPADError
    from ppad_nb.data import bundled_sample, read_dataset, sample_shots, write_shot_manifest
    from ppad_nb.safety import file_digest
    tiny, out, splits = load_clip("random:tiny"), tmp_path / "out", tmp_path / "splits"
    root = bundled_sample("train").root
    normals = read_dataset(root, "kermany", "train").normals()
    splits.mkdir()
    write_shot_manifest(splits / "seed0.csv", sample_shots(normals, 16, seed=7), root, 7)
    reproduce("demo", clip=tiny, seeds=(0,), methods=("ppad",), out=out, quiet=True, splits=splits, **SMALL)
    digest = file_digest(splits / "seed0.csv")
    assert json.loads((out / "ppad" / "seed0" / "run.json").read_text())["made_with"]["split_sha256"] == digest
    assert json.loads((out / "ppad" / "seed0" / "report" / "metrics.json").read_text())["made_with"]["split_sha256"] == digest
    with pytest.raises(PPADError, match=f"was made with split_sha256 = '{digest}', not None; pass --overwrite"):
        reproduce("demo", clip=tiny, seeds=(0,), methods=("ppad",), out=out, quiet=True, **SMALL)  # the seed's own draw
    write_shot_manifest(splits / "seed0.csv", sample_shots(normals, 16, seed=8), root, 8)  # another split for seed 0
    with pytest.raises(PPADError, match=f"was made with split_sha256 = '{digest}', not '{file_digest(splits / 'seed0.csv')}'"):
        reproduce("demo", clip=tiny, seeds=(0,), methods=("ppad",), out=out, quiet=True, splits=splits, **SMALL)
    reproduce("demo", clip=tiny, seeds=(0,), methods=("ppad",), out=out, quiet=True, splits=splits, overwrite=True, **SMALL)
    assert json.loads((out / "ppad" / "seed0" / "run.json").read_text())["made_with"]["split_sha256"] == file_digest(splits / "seed0.csv")


@pytest.mark.parametrize("extra, fragment", [
    (["--clip-weights", "missing.pt"], "missing.pt: CLIP weights file not found"), (["--data", "missing"], "missing: folder not found"),
    (["--seeds", "-1"], "--seeds must be at least 0"), (["--workers", "-1"], "--workers must be at least 0"),
    (["--settings", "missing.ini"], "missing.ini")])
def test_jobs_check_every_argument_before_creating_out(tmp_path, extra, fragment):
    result = run("ppad-reproduce", *ARGS, "--jobs", 2, *extra, "--out", tmp_path / "out", cwd=tmp_path)
    assert_user_error(result, fragment)
    assert not (tmp_path / "out").exists()


def test_a_table_it_did_not_write_is_refused_and_kept(tmp_path):
    (tmp_path / "table.md").write_text("my notes\n")
    assert_user_error(run("ppad-reproduce", *ARGS, "--methods", "chexzero", "--out", tmp_path), "table.md: exists and was not written by reproduce")
    assert (tmp_path / "table.md").read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_refusal_names_what_differs_in_the_clip(tmp_path):
    "A report made at another precision is refused with the precision named, not only the CLIP's spec."
    import warnings
    from ppad_nb.baselines import reproduce
    from ppad_nb.safety import PPADError
    small = dict(seeds=(0,), methods=("chexzero",), out=tmp_path, quiet=True, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reproduce("demo", clip="random:tiny", precision="bf16", **small)
        with pytest.raises(PPADError, match=r"was made with the CLIP random:tiny \(precision bf16\), not fp32; pass --overwrite"):
            reproduce("demo", clip="random:tiny", **small)
