"Few-shot training: learning, saved learners, bitwise resume, the run folder, ppad-train and ppad-bench train."
import csv
import json
import warnings

import numpy as np
import pytest
import torch

from conftest import assert_user_error, run
from ppad_nb.model import PPAD, RandomWeightsWarning, load_clip, read_checkpoint
from ppad_nb.runs import RUN_FILES, VALIDATED_LEARNER, VALIDATION_FILE, train

WRITTEN = sorted(set(RUN_FILES) - {VALIDATION_FILE, VALIDATED_LEARNER} | {".ppad-made"})  # the files of a run trained without --validate-every, and the kit's list of them

SMALL = dict(shots=16, batch_size=8, epochs=5, lr=0.01)



@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    return train("demo", clip=tiny, seed=0, out=out, progress=False, **SMALL)


def test_loss_goes_down(finished):
    epoch_mean = [np.mean([h["loss"] for h in finished.history if h["epoch"] == e]) for e in range(SMALL["epochs"])]
    assert epoch_mean[-1] < epoch_mean[0], epoch_mean
    assert len(finished.history) == SMALL["epochs"] * 2  # 16 shots in batches of 8


def test_saved_learner_reloads_to_identical_parameters(finished, tiny):
    for name in ("learner.safetensors", "learner_official.pt"):
        reloaded = PPAD(tiny).load_learner(finished.run_dir / name, round_like_release=False)
        assert torch.equal(reloaded.ctx, finished.model.ctx)
        assert torch.equal(reloaded.mask_embedding, finished.model.mask_embedding)


def test_run_folder_is_complete(finished):
    run_dir = finished.run_dir
    assert sorted(p.name for p in run_dir.iterdir()) == WRITTEN
    state = json.loads((run_dir / "run.json").read_text())
    assert state["finished"] and state["epochs_done"] == SMALL["epochs"] and state["seed"] == 0
    assert state["preset"]["lr"] == SMALL["lr"] and state["clip"]["spec"] == "random:tiny"
    with open(run_dir / "history.csv") as f: rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == list(range(len(finished.history)))
    assert float(rows[0]["lr"]) == SMALL["lr"]
    with open(run_dir / "shots.csv") as f: shots = [r["file"] for r in csv.DictReader(f)]
    assert len(shots) == 16 and all(s.startswith("chest_xray/train/NORMAL/") for s in shots)
    assert (run_dir / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_stopped_after_epoch_two_and_resumed_is_bitwise_equal(finished, tiny, tmp_path):
    out = tmp_path / "interrupted"
    partial = train("demo", clip=tiny, seed=0, out=out, stop_after=2, progress=False, **SMALL)
    assert not partial.finished and not (out / "learner.safetensors").exists()
    assert json.loads((out / "run.json").read_text())["epochs_done"] == 2
    resumed = train("demo", clip=tiny, seed=0, out=out, resume=True, progress=False, **SMALL)
    assert torch.equal(resumed.model.ctx, finished.model.ctx)
    assert torch.equal(resumed.model.mask_embedding, finished.model.mask_embedding)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in finished.history]


def test_workers_change_nothing_but_speed(finished, tiny):
    parallel = train("demo", clip=tiny, seed=0, workers=2, progress=False, **SMALL)
    assert torch.equal(parallel.model.ctx, finished.model.ctx)
    assert torch.equal(parallel.model.mask_embedding, finished.model.mask_embedding)


def test_ppad_train_two_epochs_vit_b32_leaves_complete_run_folder(tmp_path):
    out = tmp_path / "demo"
    result = run("ppad-train", "--preset", "demo", "--clip-weights", "random:ViT-B-32", "--epochs", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "randomly initialised CLIP" in result.stderr and "finished demo seed 0: 2 iterations" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == WRITTEN
    learner = read_checkpoint(out / "learner.safetensors")
    assert learner["ctx"].shape == (16, 512) and learner["mask_embedding"].shape == (1, 49, 768)


def test_ppad_train_refuses_to_overwrite_and_resumes(tmp_path, tiny):
    out = tmp_path / "run"
    args = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 3, "--shots", 8, "--batch-size", 8, "--out", out]
    train("demo", clip=tiny, seed=0, out=out, stop_after=1, progress=False, epochs=3, shots=8, batch_size=8)
    assert_user_error(run("ppad-train", *args), out, "holds an unfinished run (epoch 1 of 3); pass --resume")
    resumed = run("ppad-train", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    learner = (out / "learner.safetensors").read_bytes()
    assert_user_error(run("ppad-train", *args), out, "holds a finished run; pass --overwrite")
    assert (out / "learner.safetensors").read_bytes() == learner
    resumed_learner = read_checkpoint(out / "learner.safetensors")
    assert run("ppad-train", *args, "--overwrite").returncode == 0  # now one uninterrupted run
    uninterrupted = read_checkpoint(out / "learner.safetensors")
    assert torch.equal(uninterrupted["ctx"], resumed_learner["ctx"])
    assert torch.equal(uninterrupted["mask_embedding"], resumed_learner["mask_embedding"])


def test_ppad_train_bad_input(tmp_path):
    base = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1]
    assert_user_error(run("ppad-train", *base, "--data", tmp_path / "nowhere", "--out", tmp_path / "a"), "nowhere", "folder not found")
    assert_user_error(run("ppad-train", *base, "--shots", 65, "--out", tmp_path / "b"), "asked for 65 shots but there are only 64")
    assert_user_error(run("ppad-train", *base, "--resume", "--out", tmp_path / "c"), "has no checkpoint to resume from")
    assert_user_error(run("ppad-train", *base, "--preset", "zhanglabb", "--out", tmp_path / "d"), "no preset 'zhanglabb'")
    assert_user_error(run("ppad-train", "--preset", "demo", "--clip-weights", tmp_path / "missing.pt", "--out", tmp_path / "e"),
                      "missing.pt", "file not found")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_bench_train_json():
    result = run("ppad-bench", "train", "--backbone", "random:tiny", "--batch-size", 4, "--repeats", 2, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["bench"] == "train" and record["batch_size"] == 4 and record["median_step_s"] > 0


def test_missing_preset_data_folder_says_how_to_point_at_it(tmp_path, monkeypatch):
    "Without --data and $PPAD_DATA, the preset's folder is looked for here: the one-line error says how to point the kit at the data."
    monkeypatch.delenv("PPAD_DATA", raising=False)
    result = run("ppad-train", "--preset", "zhanglab", "--clip-weights", "random:tiny", "--out", tmp_path / "run", cwd=tmp_path)
    assert_user_error(result, "zhanglab: folder not found: set $PPAD_DATA to the folder that holds zhanglab, or pass --data")
    assert not (tmp_path / "run").exists()
