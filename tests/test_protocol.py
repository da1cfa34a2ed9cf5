"The protocol card of every report (issue 20, item 1): real cards of runs trained through the library, and hostile cards read back."
import csv
import hashlib
import json
import shutil

import pytest

import ppad_nb
from conftest import call, copy_images
from ppad_nb import cli
from ppad_nb.safety import PPADError
from ppad_nb.model import load_clip
from ppad_nb.reports import read_report, write_report
from ppad_nb.runs import train

pytestmark = pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning")


def sha256(path) -> str: return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluate(run_dir, *options):
    result = call(cli.evaluate_command, "--run", run_dir, "--device", "cpu", *options, prog="ppad-evaluate")
    assert result.returncode == 0, result.stderr
    return json.loads(((run_dir / ("report-validated" if "validated" in options else "report")) / "metrics.json").read_text())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    "A demo-sized run on the bundled sample, random:tiny, seed 3, validated every epoch, evaluated at both checkpoints."
    run_dir = tmp_path_factory.mktemp("protocol") / "run"
    train("demo", clip=load_clip("random:tiny"), seed=3, out=run_dir, progress=False, epochs=3, shots=48, batch_size=16, validate_every=1)
    return run_dir, evaluate(run_dir), evaluate(run_dir, "--checkpoint", "validated")


def test_a_trained_run_says_normal_only_its_shots_and_the_last_epoch(demo_run):
    run_dir, last, _ = demo_run
    card = last["protocol"]
    assert card["labels"] == "normal-only"
    assert (card["shots"]["count"], card["shots"]["seed"]) == (48, 3)
    assert card["shots"]["split_sha256"] == sha256(run_dir / "shots.csv")
    with open(run_dir / "shots.csv") as f: assert len(list(csv.DictReader(f))) == 48
    assert card["shots"]["drawn"]["format"] == "seeded draw"
    assert (card["checkpoint"]["rule"], card["checkpoint"]["epoch"]) == ("last", 3)
    assert card["threshold"]["rule"] == "fixed 0.5, as in the paper"
    assert card["threshold"]["operating_points"] == [p["name"] for p in last["operating_points"]]
    assert "heldout_normals_95" in card["threshold"]["operating_points"]  # the run's 16 held-out normals set thresholds
    assert card["test_set_sha256"] == last["made_with"]["test_set"] and len(card["test_set_sha256"]) == 64
    assert card["clip"] == {"spec": "random:tiny", "sha256": None} and card["precision"] == "fp32"
    assert card["kit_version"] == ppad_nb.__version__
    readme = (run_dir / "report" / "README.md").read_text()
    assert "## Protocol" in readme and "- training labels: normal images only" in readme
    assert f"- shots: 48, seed 3, split SHA-256 {sha256(run_dir / 'shots.csv')[:16]}..." in readme
    assert "- checkpoint: epoch 3, the last epoch, as in the paper" in readme
    assert readme.index("## Protocol") < readme.index("## Operating points")


def test_a_validated_checkpoint_says_which_epoch_the_validation_chose(demo_run):
    run_dir, last, validated = demo_run
    with open(run_dir / "validation.csv") as f: rows = [(float(r["auc"]), -int(r["epoch"])) for r in csv.DictReader(f)]
    best = -max(rows)[1]  # the highest validation AUC, the earliest epoch on a tie
    card = validated["protocol"]
    assert (card["checkpoint"]["rule"], card["checkpoint"]["epoch"]) == ("validated", best)
    assert "no test label" in card["checkpoint"]["means"]
    assert {k: v for k, v in card.items() if k != "checkpoint"} == {k: v for k, v in last["protocol"].items() if k != "checkpoint"}
    assert f"- checkpoint: epoch {best}, the epoch of the best validation AUC" in (run_dir / "report-validated" / "README.md").read_text()


def test_a_learner_file_alone_says_its_shots_and_epoch_are_not_recorded(tmp_path, demo_run):
    run_dir, last, _ = demo_run
    out = tmp_path / "alone"
    result = call(cli.evaluate_command, "--learner", run_dir / "learner.safetensors", "--preset", "demo", "--clip-weights", "random:tiny",
                  "--out", out, "--device", "cpu", prog="ppad-evaluate")
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "metrics.json").read_text())["protocol"]
    assert (card["labels"], card["shots"], card["checkpoint"]["rule"], card["checkpoint"]["epoch"]) == ("normal-only", None, "given", None)
    assert card["test_set_sha256"] == last["protocol"]["test_set_sha256"]  # the same test images, the same digest
    assert "- shots: not recorded (a learner file evaluated without its run folder)" in (out / "README.md").read_text()


def test_an_mvfa_seed_file_run_says_its_abnormal_images_were_not_used(tmp_path, sample):
    train_set, test_set = sample
    root = tmp_path / "Chest_AD"
    normals = copy_images(train_set.files[:8], root / "valid/good/img")
    abnormal = [f for f, label in zip(test_set.files, test_set.labels) if label == 1]
    copy_images(abnormal[:3], root / "valid/Ungood/img")
    copy_images([f for f, label in zip(test_set.files, test_set.labels) if label == 0][:3], root / "test/good/img")
    copy_images(abnormal[3:6], root / "test/Ungood/img")
    seeds = tmp_path / "4-shot.txt"
    seeds.write_text(f"n-0: {' '.join(normals[i].name for i in (6, 1, 4, 2))}\na-0: {' '.join(sorted(p.name for p in (root / 'valid/Ungood/img').iterdir()))}\n")
    run_dir = tmp_path / "run"
    train("bmad-chest", data=root, clip=load_clip("random:tiny"), out=run_dir, progress=False, epochs=1, shots=4, batch_size=4, shots_file=seeds)
    card = evaluate(run_dir)["protocol"]
    assert card["labels"] == "normal-only" and card["shots"]["count"] == 4
    assert card["shots"]["split_sha256"] == sha256(run_dir / "shots.csv")
    drawn = card["shots"]["drawn"]
    assert (drawn["format"], drawn["file"], drawn["line"], drawn["abnormal_not_used"]) == ("mvfa", "4-shot.txt", "n-0", 3)
    assert "from 4-shot.txt line n-0; line a-0 (3 abnormal images) not used: PPAD trains on normal images only" in (run_dir / "report" / "README.md").read_text()


def test_a_zero_shot_baseline_says_nothing_was_trained(tmp_path):
    from ppad_nb.baselines import reproduce
    reproduce("demo", clip=load_clip("random:tiny"), methods=("chexzero",), out=tmp_path / "out", quiet=True)
    report = tmp_path / "out" / "chexzero" / "report"
    card = json.loads((report / "metrics.json").read_text())["protocol"]
    assert (card["labels"], card["shots"], card["checkpoint"]) == (None, None, None)
    assert card["clip"]["spec"] == "random:tiny" and card["threshold"]["operating_points"] == ["fixed_0.5", "test_specificity_90", "test_specificity_95"]
    readme = (report / "README.md").read_text()
    assert "- training labels: none: a zero-shot model, nothing trained" in readme and "- shots: none (zero-shot)" in readme
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| paper† |" in table and "† paper: the numbers PPAD's paper publishes, made with its protocol" in table


@pytest.mark.parametrize("change, field", [
    (lambda card: "normal-only", "its protocol is a str, not an object"),
    (lambda card: {**card, "labels": True}, "protocol field labels is True, not str or int or null"),
    (lambda card: {**card, "shots": {**card["shots"], "seed": "3"}}, "protocol field shots.seed is '3', not int or null"),
    (lambda card: {**card, "checkpoint": {**card["checkpoint"], "epoch": 2.5}}, "protocol field checkpoint.epoch is 2.5, not int or null"),
    (lambda card: {**card, "threshold": {**card["threshold"], "operating_points": "fixed_0.5"}}, "protocol field threshold.operating_points is 'fixed_0.5', not list"),
    (lambda card: {k: v for k, v in card.items() if k != "precision"}, "protocol field precision is missing, not str"),
])
def test_a_card_of_the_wrong_type_is_one_line_naming_the_file_and_field(tmp_path, demo_run, change, field):
    run_dir, last, _ = demo_run
    report = tmp_path / "report"
    shutil.copytree(run_dir / "report", report)
    (report / "metrics.json").write_text(json.dumps({**last, "protocol": change(last["protocol"])}))
    with pytest.raises(PPADError) as refused: read_report(report)
    assert str(refused.value) == f"{report / 'metrics.json'}: {field}; evaluate again to replace the report"


def test_write_report_refuses_a_wrong_card_before_writing_anything(tmp_path, demo_run):
    run_dir, last, _ = demo_run
    result = {**read_report(run_dir / "report"), "metrics": {k: last[k] for k in ("acc", "auc", "f1", "ap", "n", "n_abnormal", "threshold")}}
    with pytest.raises(PPADError, match="the protocol given to write_report: protocol field clip is missing"):
        write_report(tmp_path / "never", result, protocol={k: v for k, v in last["protocol"].items() if k != "clip"})
    assert not (tmp_path / "never").exists()
