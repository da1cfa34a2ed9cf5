"reproduce_checkpoints (issue 20, item 2): last epoch, validation-selected and test-selected (oracle) test AUC side by side."
import contextlib
import csv
import io
import shutil

import pytest
from safetensors.torch import load_file

from ppad_nb.baselines import reproduce, reproduce_checkpoints
from ppad_nb.safety import PPADError
from ppad_nb.data import bundled_sample
from ppad_nb.evaluate import evaluate
from ppad_nb.model import PPAD, load_clip
from ppad_nb.runs import train, validated_learner

pytestmark = pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning")
SMALL = dict(epochs=4, shots=16, batch_size=16)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = tmp_path_factory.mktemp("checkpoints") / "out"
    choices = reproduce_checkpoints("demo", validate_every=2, clip=load_clip("random:tiny"), seeds=(0, 1), out=out, quiet=True, **SMALL)
    return out, choices


def same_tensors(a, b) -> bool:
    a, b = load_file(a), load_file(b)
    return a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_oracle_never_below_last_and_validated_is_the_validated_learner(checkpoints):
    out, choices = checkpoints
    clip, test_set = load_clip("random:tiny"), bundled_sample("test")
    assert sorted(choices) == [("ppad", 0), ("ppad", 1)]
    for (name, seed), c in choices.items():
        run_dir = out / name / f"seed{seed}"
        assert c["oracle"][1] >= c["last"][1] and c["oracle"][1] >= c["validated"][1]
        assert c["last"][0] == 4 and c["validated"][0] in (2, 4) and c["oracle"][0] in (2, 4)
        validated = evaluate(PPAD.from_learner(clip, validated_learner(run_dir)), test_set, size=224, progress=False)  # from scratch
        assert c["validated"][1] == pytest.approx(validated["metrics"]["auc"], abs=1e-12)
        last = evaluate(PPAD.from_learner(clip, run_dir / "learner.safetensors"), test_set, size=224, progress=False)
        assert c["last"][1] == pytest.approx(last["metrics"]["auc"], abs=1e-12)
        assert same_tensors(run_dir / "epochs" / f"learner-epoch{c['validated'][0]}.safetensors", validated_learner(run_dir))
        assert same_tensors(run_dir / "epochs" / "learner-epoch4.safetensors", run_dir / "learner.safetensors")
    with open(out / "checkpoints.csv", newline="") as f: rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [("ppad", "0"), ("ppad", "1")]
    assert float(rows[0]["oracle_auc_percent"]) == pytest.approx(100 * choices["ppad", 0]["oracle"][1], abs=0.006)
    assert "oracle: test-selected (optimistic)" in (out / "checkpoints.md").read_text()


def test_segments_train_the_same_run_as_one_call(checkpoints, tmp_path):
    out, choices = checkpoints
    train("demo", clip=load_clip("random:tiny"), seed=1, out=tmp_path / "one", progress=False, validate_every=2, **SMALL)
    assert same_tensors(tmp_path / "one" / "learner.safetensors", out / "ppad" / "seed1" / "learner.safetensors")
    assert (tmp_path / "one" / "validation.csv").read_text() == (out / "ppad" / "seed1" / "validation.csv").read_text()


def test_a_second_call_trains_and_scores_nothing(checkpoints):
    out, choices = checkpoints
    scored = {p: p.stat().st_mtime_ns for p in out.rglob("learner-epoch*")}
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        again = reproduce_checkpoints("demo", validate_every=2, clip=load_clip("random:tiny"), seeds=(0, 1), out=out, **SMALL)
    assert again == choices and "training" not in log.getvalue()
    assert {p: p.stat().st_mtime_ns for p in scored} == scored


def test_a_learner_lost_after_its_checkpoint_is_recovered_without_training(checkpoints, tmp_path):
    out, choices = checkpoints
    copy = shutil.copytree(out, tmp_path / "out", ignore=shutil.ignore_patterns(".ppad-lock"))
    epochs = copy / "ppad" / "seed0" / "epochs"
    for name in ("learner-epoch4.safetensors", "learner-epoch4.json"): (epochs / name).unlink()  # stopped before the save
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        again = reproduce_checkpoints("demo", validate_every=2, clip=load_clip("random:tiny"), seeds=(0,), out=copy, **SMALL)
    assert "training" not in log.getvalue() and again["ppad", 0] == choices["ppad", 0]
    assert same_tensors(epochs / "learner-epoch4.safetensors", copy / "ppad" / "seed0" / "learner.safetensors")
    (epochs / "learner-epoch2.safetensors").unlink()  # an earlier epoch's learner cannot come back without training again
    with pytest.raises(PPADError, match=r"was made with no learner of epoch 2 \(epochs/learner-epoch2.safetensors missing\); pass --overwrite"):
        reproduce_checkpoints("demo", validate_every=2, clip=load_clip("random:tiny"), seeds=(0,), out=copy, quiet=True, **SMALL)


def test_hostile_run_without_epoch_learners_or_other_validation(checkpoints, tmp_path):
    out, choices = checkpoints
    clip = load_clip("random:tiny")
    with pytest.raises(PPADError) as error:  # the same runs asked with another --validate-every
        reproduce_checkpoints("demo", validate_every=1, clip=clip, seeds=(0,), out=out, quiet=True, **SMALL)
    assert str(error.value).startswith(f"{out / 'ppad' / 'seed0'}: was made with validation at epochs [2, 4]") and "\n" not in str(error.value)
    plain = tmp_path / "plain"  # a reproduce run keeps no epoch learners: refused, or trained again with overwrite
    reproduce("demo", clip=clip, seeds=(0,), out=plain, quiet=True, **{**SMALL, "epochs": 2})
    with pytest.raises(PPADError, match="was made with validation at epochs none, not .1, 2.; pass --overwrite"):
        reproduce_checkpoints("demo", validate_every=1, clip=clip, seeds=(0,), out=plain, quiet=True, **{**SMALL, "epochs": 2})
    with pytest.raises(PPADError, match="was made with validation at epochs none, not .2.; pass --overwrite"):  # its last epoch is no substitute
        reproduce_checkpoints("demo", validate_every=2, clip=clip, seeds=(0,), out=plain, quiet=True, **{**SMALL, "epochs": 2})
    assert not (plain / "ppad" / "seed0" / "epochs").exists()
    again = reproduce_checkpoints("demo", validate_every=1, clip=clip, seeds=(0,), out=plain, quiet=True, overwrite=True, **{**SMALL, "epochs": 2})
    assert again["ppad", 0]["last"][0] == 2 and (plain / "ppad" / "seed0" / "epochs" / "learner-epoch1.safetensors").is_file()


@pytest.mark.parametrize("options, message", [
    (dict(validate_every=0), "--validate-every must be at least 1"),
    (dict(methods=("chexzero",)), "--checkpoints needs a trained method"),
    (dict(methods=("maple",)), "unknown method(s) maple"),
])
def test_hostile_options_refused_before_anything_is_made(tmp_path, options, message):
    never = tmp_path / "never"
    with pytest.raises(PPADError) as error:
        reproduce_checkpoints("demo", clip="random:tiny", out=never, quiet=True, **{"validate_every": 1, **options}, **SMALL)
    assert message in str(error.value) and not never.exists()


def test_hostile_epoch_files_are_refused_not_used(tmp_path):
    "An epoch learner changed since the kit wrote it, or a kept AUC replaced by a link, is one line naming the file; neither is read as a result."
    out, options = tmp_path / "out", dict(validate_every=1, clip=load_clip("random:tiny"), seeds=(0,), quiet=True, epochs=2, shots=16, batch_size=16)
    reproduce_checkpoints("demo", out=out, **options)
    epochs = out / "ppad" / "seed0" / "epochs"
    learner, kept = epochs / "learner-epoch1.safetensors", epochs / "learner-epoch2.json"
    learner.write_bytes(learner.read_bytes() + b" ")  # changed since the kit wrote it
    with pytest.raises(PPADError, match="learner-epoch1.safetensors: was not written by the kit"):
        reproduce_checkpoints("demo", out=out, **options)
    learner.write_bytes(learner.read_bytes()[:-1])  # as the kit wrote it again
    outside = tmp_path / "elsewhere.json"
    outside.write_text('{"auc": 1.0}')
    kept.unlink(); kept.symlink_to(outside)
    with pytest.raises(PPADError, match="learner-epoch2.json"):
        reproduce_checkpoints("demo", out=out, **options)
    assert outside.read_text() == '{"auc": 1.0}' and kept.is_symlink()  # the link's target neither read as a result nor written
