"Transfer (issue 20, item 5): a finished run scored on another data set, and the train-on-row, test-on-column AUC matrix."
import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import sample_folder

from ppad_nb.baselines import evaluate_transfer, reproduce_transfer
from ppad_nb.config import get_preset
from ppad_nb.safety import PPADError
from ppad_nb.data import bundled_sample
from ppad_nb.reports import read_report
from ppad_nb.model import load_clip

pytestmark = pytest.mark.filterwarnings("ignore::ppad_nb.model.RandomWeightsWarning")
SMALL = dict(shots=16, batch_size=16, epochs=1, seeds=(0,))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    "Two presets on two halves of the sample in two layouts, the matrix reproduced once: (out, presets, folders, aucs)."
    base = tmp_path_factory.mktemp("transfer")
    presets = (replace(get_preset("demo"), name="half-a", layout="zhanglab", **SMALL), replace(get_preset("vindr"), name="half-b", root="bundled", **SMALL))
    folders = {"half-a": sample_folder(base / "a", "zhanglab", 0), "half-b": sample_folder(base / "b", "vindr", 1)}
    out = base / "out"
    aucs = reproduce_transfer(presets, data=folders, clip=load_clip("random:tiny"), out=out, quiet=True)
    return out, presets, folders, aucs


def one_line(error: Exception) -> str:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def test_matrix_rows_are_training_presets_columns_test_sets_and_the_diagonal_is_the_report(matrix):
    out, presets, folders, aucs = matrix
    with open(out / "transfer.csv", newline="") as f: rows = list(csv.reader(f))
    assert rows[0] == ["train", "half-a", "half-b"] and [r[0] for r in rows[1:]] == ["half-a", "half-b"]
    assert all(len(r) == 3 for r in rows)
    for i, name in enumerate(("half-a", "half-b"), start=1):  # the diagonal: each preset's run on its own test set, as its own report says
        report = json.loads((out / name / "ppad" / "seed0" / "report" / "metrics.json").read_text())
        assert float(rows[i][i]) == pytest.approx(100 * report["auc"], abs=0.006)
        assert aucs[name, name][0] == pytest.approx(report["auc"], abs=1e-12)
    markdown = (out / "transfer.md").read_text()
    assert "| half-a | **" in markdown and "randomly initialised CLIP" in markdown


def test_off_diagonal_cell_is_evaluate_transfer_at_the_layouts_resize(matrix):
    out, presets, folders, aucs = matrix
    result = evaluate_transfer(out / "half-a" / "ppad" / "seed0", folders["half-b"], "vindr", clip="random:tiny")
    assert result["size"] == 256  # the VinDr-CXR layout is resized to 256 first, as its preset
    assert result["metrics"]["auc"] == pytest.approx(aucs["half-a", "half-b"][0], abs=1e-12)
    assert len(result["scores"]) == 20 and result["metrics"]["auc"] == pytest.approx(
        read_report_auc_of(result), abs=1e-12)


def read_report_auc_of(result) -> float:
    "The AUC of `result`'s scores computed independently (sklearn)."
    from sklearn.metrics import roc_auc_score
    return roc_auc_score(result["labels"], result["scores"])


def test_cells_are_kept_while_run_clip_and_test_set_are_the_same(matrix, tmp_path, monkeypatch):
    out, presets, folders, aucs = matrix
    cells = {p: p.stat().st_mtime_ns for p in (out / "transfer").rglob("*.json")}
    assert len(cells) == 4
    again = reproduce_transfer(presets, data=folders, clip=load_clip("random:tiny"), out=out, quiet=True)  # nothing changed: every cell kept
    assert {p: p.stat().st_mtime_ns for p in cells} == cells and again == aucs

    from ppad_nb import baselines
    clip, learner = load_clip("random:tiny"), out / "half-a" / "ppad" / "seed0" / "learner.safetensors"
    test_set = baselines.transfer_test_set(folders["half-b"], "vindr")
    cell = tmp_path / "cell.json"
    first = baselines.scored_auc(cell, learner, clip, test_set, "digest-1", 256)
    assert first == pytest.approx(aucs["half-a", "half-b"][0], abs=1e-12)
    scored = []
    monkeypatch.setattr(baselines, "score_transfer", lambda *a, **k: scored.append(a[-2:]) or {"metrics": {"auc": 0.5}})
    assert baselines.scored_auc(cell, learner, clip, test_set, "digest-1", 256) == first and scored == []  # kept
    assert baselines.scored_auc(cell, learner, clip, test_set, "digest-2", 256) == 0.5  # another test set: scored again
    assert baselines.scored_auc(cell, learner, clip, test_set, "digest-2", 224) == 0.5 and len(scored) == 2  # another resize: again
    other_learner = out / "half-b" / "ppad" / "seed0" / "learner.safetensors"
    baselines.scored_auc(cell, other_learner, clip, test_set, "digest-2", 224)
    assert len(scored) == 3  # another learner (by content): again
    cell.write_text(json.dumps({"auc": 0.99, "made_with": "mine"}))  # a file the kit did not write is never replaced
    with pytest.raises(PPADError) as error: baselines.scored_auc(cell, learner, clip, test_set, "digest-2", 224)
    assert one_line(error.value).startswith(f"{cell}: was not written by the kit")


def test_hostile_data_folder_of_the_wrong_layout(matrix):
    out, presets, folders, aucs = matrix
    with pytest.raises(PPADError) as error:  # a ZhangLab-layout folder read as VinDr-CXR: the index it looked for
        evaluate_transfer(out / "half-a" / "ppad" / "seed0", folders["half-a"], "vindr", clip="random:tiny")
    assert str(folders["half-a"] / "data.json") in one_line(error.value) and "file not found" in str(error.value)
    with pytest.raises(PPADError) as error:  # and the other way round: the folder it looked for
        evaluate_transfer(out / "half-a" / "ppad" / "seed0", folders["half-b"], "zhanglab", clip="random:tiny")
    assert "normal_256: folder not found" in one_line(error.value)


@pytest.mark.parametrize("test_lists, message", [
    ({"0": [], "1": []}, "has no test images in the vindr layout"),
    ({"0": ["x.png"], "1": []}, "has no abnormal test images in the vindr layout: an AUC needs both classes"),
])
def test_hostile_empty_or_one_class_test_set(matrix, tmp_path, test_lists, message):
    out, presets, folders, aucs = matrix
    (tmp_path / "images").mkdir()
    shutil.copy(bundled_sample("test").files[0], tmp_path / "images" / "x.png")
    (tmp_path / "data.json").write_text(json.dumps({"train": {"0": ["x.png"]}, "test": test_lists}))
    with pytest.raises(PPADError) as error:
        evaluate_transfer(out / "half-a" / "ppad" / "seed0", tmp_path, "vindr", clip="random:tiny", out=tmp_path / "report")
    assert one_line(error.value) == f"{tmp_path}: {message}"
    assert not (tmp_path / "report").exists()
    never = tmp_path / "never"  # the matrix refuses it before any training
    with pytest.raises(PPADError, match="an AUC needs both|has no test images"):
        reproduce_transfer((presets[0], presets[1]), data={"half-a": folders["half-a"], "half-b": tmp_path}, clip="random:tiny", out=never, quiet=True)
    assert not never.exists()


def test_hostile_run_folder_without_a_learner(matrix, tmp_path):
    out, presets, folders, aucs = matrix
    run_dir = shutil.copytree(out / "half-a" / "ppad" / "seed0", tmp_path / "run")
    (run_dir / "learner.safetensors").unlink()
    with pytest.raises(PPADError) as error:
        evaluate_transfer(run_dir, folders["half-b"], "vindr", clip="random:tiny")
    assert one_line(error.value).startswith(f"{run_dir / 'learner.safetensors'}: not found")
    with pytest.raises(PPADError) as error:  # a folder that is not a run at all
        evaluate_transfer(folders["half-b"], folders["half-b"], "vindr", clip="random:tiny")
    assert one_line(error.value) == f"{folders['half-b']}: not a run folder (no run.json)"
    with pytest.raises(PPADError) as error:  # a run scored with another CLIP than it was trained with
        evaluate_transfer(out / "half-a" / "ppad" / "seed0", folders["half-b"], "vindr", clip="random:ViT-B-32")
    assert one_line(error.value).startswith(str(out / "half-a" / "ppad" / "seed0" / "run.json"))


def test_hostile_transfer_file_the_user_wrote_is_left_alone(matrix, tmp_path):
    out, presets, folders, aucs = matrix
    (tmp_path / "transfer.md").write_text("my notes\n")
    with pytest.raises(PPADError) as error:
        reproduce_transfer(presets, data=folders, clip="random:tiny", out=tmp_path, quiet=True)
    assert one_line(error.value).startswith(str(tmp_path / "transfer.md"))
    assert (tmp_path / "transfer.md").read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == ["transfer.md"]
