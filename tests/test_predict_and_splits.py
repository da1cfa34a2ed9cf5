"ppad-predict on PNG and DICOM; reusable few-shot splits for ppad-train and ppad-reproduce, checked by SHA-256."
import csv
import json

import numpy as np

from conftest import FIXTURES, assert_user_error, copy_images, run

FIXTURE = FIXTURES / "parity-tiny"
MODEL = ["--clip-weights", FIXTURE / "clip_tiny.pt", "--learner", FIXTURE / "learner_tiny.pt", "--device", "cpu"]


def test_predict_gives_a_png_and_its_dicom_the_same_score(tmp_path, sample):
    from ppad_nb.data import read_grayscale, write_dicom
    png = sample[1].files[-1]
    dicom = write_dicom(tmp_path / "same.dcm", 255 - np.array(read_grayscale(png)), photometric="MONOCHROME1")
    result = run("ppad-predict", png, dicom, *MODEL, "--out", tmp_path / "figures")
    assert result.returncode == 0, result.stderr
    scores = [line.split("score ")[1].split(" ")[0] for line in result.stdout.splitlines() if " score " in line]
    assert len(scores) == 2 and scores[0] == scores[1], result.stdout
    assert "rule: " in result.stdout and "regions (left/right are the image's: left (image) = patient's right): left " in result.stdout
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted([".ppad-made", png.stem + ".png", "same.png"])
    assert (tmp_path / "figures" / "same.png").read_bytes()[:4] == b"\x89PNG"

    as_json = run("ppad-predict", png, dicom, *MODEL, "--json", "--threshold", "0.2")
    assert as_json.returncode == 0, as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(png), str(dicom)]
    for r in records:
        assert set(r) >= {"file", "score", "threshold", "decision", "rule", "p_left", "p_right", "p_upper", "p_lower", "p_whole"}
        probs = [r[f"p_{k}"] for k in ("left", "right", "upper", "lower", "whole")]
        assert r["rule"] == ("max" if max(probs) > 0.8 else "mean")
        assert abs(r["score"] - (max(probs) if max(probs) > 0.8 else np.mean(probs))) < 2e-6
        assert (r["threshold"], r["decision"]) == (0.2, "abnormal" if r["score"] > 0.2 else "normal")
    assert f"{records[0]['score']:.4f}" == scores[0]


def test_predict_precision_release_scores_close_to_fp32():
    "--precision reaches ppad-predict: the released float16 numerics move a score by at most 2e-3 (the release fixture's limit), and do move it."
    image = FIXTURE / "images" / sorted(p.name for p in (FIXTURE / "images").iterdir())[0]
    scores = {}
    for precision in ("fp32", "release"):
        result = run("ppad-predict", image, *MODEL, "--json", "--precision", precision)
        assert result.returncode == 0, result.stderr
        scores[precision] = json.loads(result.stdout)["score"]
    assert 0 < abs(scores["release"] - scores["fp32"]) <= 2e-3, scores


def test_predict_bad_input(tmp_path):
    assert_user_error(run("ppad-predict", tmp_path / "none.png", *MODEL), tmp_path / "none.png", "file not found")
    assert_user_error(run("ppad-predict", FIXTURE / "images" / sorted(p.name for p in (FIXTURE / "images").iterdir())[0], *MODEL,
                          "--threshold", "2"), "--threshold must be between 0 and 1")


def make_data(root, sample):
    "A copy of the bundled sample in its own layout (the demo preset's), free to change."
    train, test = sample
    copy_images(train.files, root / "chest_xray" / "train" / "NORMAL")
    copy_images(test.normals(), root / "chest_xray" / "test" / "NORMAL")
    copy_images([f for f, l in zip(test.files, test.labels) if l == 1], root / "chest_xray" / "test" / "PNEUMONIA")
    return root


SMALL = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--shots", 8, "--batch-size", 8, "--device", "cpu"]


def shot_files(run_dir):
    with open(run_dir / "shots.csv") as f: return [(r["file"], r["sha256"]) for r in csv.DictReader(f)]


def test_train_reuses_an_exact_split_and_refuses_a_changed_one(tmp_path, sample):
    data = make_data(tmp_path / "data", sample)
    first = run("ppad-train", *SMALL, "--data", data, "--seed", 0, "--out", tmp_path / "first")
    assert first.returncode == 0, first.stderr
    with open(tmp_path / "first" / "heldout.csv") as f: heldout = [r["file"] for r in csv.DictReader(f)]
    assert len(heldout) == 64 - 8 and not set(heldout) & {f for f, _ in shot_files(tmp_path / "first")}
    again = run("ppad-train", *SMALL, "--data", data, "--seed", 5, "--out", tmp_path / "again", "--shots-file", tmp_path / "first" / "shots.csv")
    assert again.returncode == 0, again.stderr
    assert shot_files(tmp_path / "again") == shot_files(tmp_path / "first")
    assert len(shot_files(tmp_path / "first")[0][1]) == 64

    changed = data / shot_files(tmp_path / "first")[3][0]
    changed.write_bytes(changed.read_bytes() + b"\0")
    bad = run("ppad-train", *SMALL, "--data", data, "--out", tmp_path / "bad", "--shots-file", tmp_path / "first" / "shots.csv")
    assert_user_error(bad, changed, "SHA-256 changed")
    changed.unlink()
    missing = run("ppad-train", *SMALL, "--data", data, "--out", tmp_path / "bad", "--shots-file", tmp_path / "first" / "shots.csv")
    assert_user_error(missing, changed, "not found")
    assert not (tmp_path / "bad").exists()


def test_reproduce_reuses_splits_and_tables_the_paired_auc_difference(tmp_path, sample):
    data = make_data(tmp_path / "data", sample)
    first = run("ppad-train", *SMALL, "--data", data, "--seed", 3, "--out", tmp_path / "split")
    assert first.returncode == 0, first.stderr
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "seed0.csv").write_bytes((tmp_path / "split" / "shots.csv").read_bytes())
    out = tmp_path / "reproduce"
    result = run("ppad-reproduce", *SMALL, "--data", data, "--seeds", 0, "--methods", "ppad", "chexzero", "--splits", splits, "--out", out)
    assert result.returncode == 0, result.stderr
    assert shot_files(out / "ppad" / "seed0") == shot_files(tmp_path / "split")
    table = (out / "table.md").read_text()
    assert "AUC - ppad [95% CI]" in table
    with open(out / "table.csv") as f: rows = [r for r in csv.DictReader(f) if r["metric"] == "auc_minus_ppad"]
    assert [r["method"] for r in rows] == ["chexzero"]
    assert float(rows[0]["ci_low_percent"]) <= float(rows[0]["mean_percent"]) <= float(rows[0]["ci_high_percent"])
    report = json.loads((out / "ppad" / "seed0" / "report" / "metrics.json").read_text())
    assert report["n_heldout_normals"] == 56 and report["operating_points"][1]["name"] == "heldout_normals_95"
    nothing = run("ppad-reproduce", *SMALL, "--data", data, "--seeds", 1, "--splits", splits, "--out", tmp_path / "r2")
    assert_user_error(nothing, splits, "no split for seed 1")
    assert not (tmp_path / "r2").exists()
