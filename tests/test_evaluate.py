"Metrics against scikit-learn, summaries over seeds, reports, ppad-evaluate and ppad-demo."
import csv
import json
import os

import numpy as np
import pytest
from sklearn import metrics as sk

from conftest import FIXTURES, assert_user_error, run
from ppad_nb.safety import PPADError
from ppad_nb.evaluate import aggregate, compute_metrics, summarize
from ppad_nb.config import REPORT_FILES

CASES = {
    "separable": ([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]),
    "ties across classes": ([0, 1, 0, 1, 0, 1, 1], [0.5, 0.5, 0.7, 0.7, 0.2, 0.9, 0.2]),
    "all tied": ([0, 1, 1, 0], [0.6, 0.6, 0.6, 0.6]),
    "threshold exactly 0.5": ([0, 1, 1], [0.5, 0.5, 0.51]),
    "inverted": ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]),
    "no positive predictions": ([0, 1, 1], [0.1, 0.2, 0.3]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_metrics_equal_scikit_learn(name):
    labels, scores = map(np.asarray, CASES[name])
    ours = compute_metrics(labels, scores)
    predicted = scores > 0.5
    assert ours["acc"] == sk.accuracy_score(labels, predicted)
    assert ours["f1"] == sk.f1_score(labels, predicted, zero_division=0)
    assert ours["auc"] == sk.roc_auc_score(labels, scores)
    assert ours["ap"] == sk.average_precision_score(labels, scores)
    assert (ours["n"], ours["n_abnormal"]) == (len(labels), int(labels.sum()))


def test_hand_computed_auc_with_ties():
    # 4 positives x 3 negatives = 12 pairs; (0.5,0.5), (0.7,0.7), (0.2,0.2) are ties, 1/2 each;
    # positives 0.5, 0.7, 0.9, 0.2 against negatives 0.5, 0.7, 0.2: wins 1 + 2 + 3 + 0 = 6, ties 3 -> 7.5 / 12
    labels, scores = CASES["ties across classes"]
    assert compute_metrics(labels, scores)["auc"] == pytest.approx(7.5 / 12)


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1]])
def test_single_class_is_a_clear_error_not_nan(labels):
    with pytest.raises(PPADError, match="holds only .* images: AUC and AP need normal and abnormal images"):
        compute_metrics(labels, np.linspace(0.1, 0.9, len(labels)))


def test_bad_metric_inputs():
    with pytest.raises(PPADError, match="must be 0 .normal. or 1"): compute_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(PPADError, match="two vectors of one length"): compute_metrics([0, 1], [0.1])
    with pytest.raises(PPADError, match="NaN"): compute_metrics([0, 1], [0.1, np.nan])


def test_summary_over_seeds():
    per_seed = [{"acc": a, "auc": a, "f1": a, "ap": a} for a in (0.8, 0.9, 0.85)]
    summary = summarize(per_seed)
    assert summary["acc"] == pytest.approx((0.85, np.std([0.8, 0.9, 0.85], ddof=1)))
    assert summarize(per_seed[:1])["auc"] == (0.8, 0.0)


def test_aggregate_rule_is_strict():
    probs = np.array([[0.8, 0.1, 0.1, 0.1, 0.1], [0.80001, 0.1, 0.1, 0.1, 0.1]])
    np.testing.assert_allclose(aggregate(probs), [0.24, 0.80001])


def check_report(folder, n_images):
    "A complete report folder: every file, all four metrics, one row per test image, real PNGs."
    assert sorted(p.name for p in folder.iterdir()) == sorted(REPORT_FILES + (".ppad-made",))
    record = json.loads((folder / "metrics.json").read_text())
    for key in ("acc", "auc", "f1", "ap"): assert 0 <= record[key] <= 1
    with open(folder / "scores.csv") as f: rows = list(csv.DictReader(f))
    assert len(rows) == n_images and {r["label"] for r in rows} == {"normal", "abnormal"}
    for name in ("curves.png", "histogram.png", "calibration.png", "extremes.png"): assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    readme = (folder / "README.md").read_text()
    assert all(f"]({name})" in readme for name in ("curves.png", "histogram.png", "calibration.png", "extremes.png"))
    for key in ("acc", "auc", "f1", "ap"): assert record["ci"][key][0] <= record[key] <= record["ci"][key][1], (key, record["ci"][key])
    names = [p["name"] for p in record["operating_points"]]
    assert names[0] == "fixed_0.5" and names[-2:] == ["test_specificity_90", "test_specificity_95"]
    assert 0 <= record["calibration"]["ece"] <= 1 and "## Operating points" in readme and "Expected calibration error" in readme
    return record


def check_demo_answers_predict(out, record):
    "The demo's run, as the demo left it, answers ppad-predict --run at the held-out threshold its report records; the report holds no machine path."
    from ppad_nb.config import assets_path
    assert record["n_heldout_normals"] == 16 and "Held-out normals: 16 normal training images" in (out / "report" / "README.md").read_text()
    heldout = next(p["threshold"] for p in record["operating_points"] if p["name"] == "heldout_normals_95")
    image = next((assets_path() / "zhanglab-mini" / "chest_xray" / "test" / "PNEUMONIA").iterdir())
    for run_path in (out / "run", out):  # the run, or the demo's folder
        result = run("ppad-predict", image, "--run", run_path, "--json")
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert (answer["operating_point"], answer["threshold"]) == ("heldout_normals_95", heldout)
        assert answer["decision"] == ("abnormal" if answer["score"] > heldout else "normal")
    for file in (out / "report").iterdir():
        text = file.read_bytes().decode("utf-8", errors="ignore")
        assert str(out.parent) not in text and str(assets_path()) not in text, file.name
    learner = out / "run" / "learner.safetensors"  # a report is used only with the run it was written for
    learner.write_bytes(learner.read_bytes() + b" ")
    assert_user_error(run("ppad-predict", image, "--run", out, "--json"), out / "report", "is not the report of")
    assert {"../run/loss.png", "../synthesized.png"} <= {line.split("(")[-1].rstrip(")") for line in (out / "report" / "README.md").read_text().splitlines() if line.startswith("![")}


def test_demo_leaves_a_complete_report_and_protects_it(tmp_path):
    out = tmp_path / "demo"
    result = run("ppad-demo", "--out", out, "--clip-weights", "random:tiny", "--epochs", 2)
    assert result.returncode == 0, result.stderr
    assert "RANDOMLY INITIALISED CLIP" in result.stdout and f"Report: {out / 'report' / 'README.md'}" in result.stdout
    record = check_report(out / "report", 40)
    assert record["random_weights"] is True
    assert (out / "synthesized.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "run" / "run.json").read_text())["finished"]
    check_demo_answers_predict(out, record)
    assert_user_error(run("ppad-demo", "--out", out, "--clip-weights", "random:tiny", "--epochs", 2), "exists from an earlier demo; pass --force")
    assert run("ppad-demo", "--out", out, "--clip-weights", "random:tiny", "--epochs", 1, "--force").returncode == 0
    assert json.loads((out / "run" / "run.json").read_text())["preset"]["epochs"] == 1


def test_ppad_evaluate_a_learner_file(tmp_path, sample):
    parity = FIXTURES / "parity-tiny"
    out = tmp_path / "report"
    result = run("ppad-evaluate", "--learner", parity / "learner_tiny.pt", "--clip-weights", parity / "clip_tiny.pt",
                 "--preset", "demo", "--out", out)
    assert result.returncode == 0, result.stderr
    record = check_report(out, 40)
    with open(out / "scores.csv") as f: rows = list(csv.DictReader(f))
    labels = [1 if r["label"] == "abnormal" else 0 for r in rows]
    assert record["auc"] == pytest.approx(sk.roc_auc_score(labels, [float(r["score"]) for r in rows]))
    from ppad_nb.config import assets_path
    for file in out.iterdir():  # the learner, the CLIP and the test set are named relative to the report: no path of this machine
        text = file.read_bytes().decode("utf-8", errors="ignore")
        assert str(parity) not in text and str(assets_path()) not in text, file.name
    learner = record["learner"]  # relative to the report, or only its name where the two share nothing but the filesystem root
    assert learner == "learner_tiny.pt" or (not os.path.isabs(learner) and (out / learner).resolve() == (parity / "learner_tiny.pt").resolve())
    assert record["root"] == "ppad_nb/assets/zhanglab-mini"


def test_ppad_evaluate_bad_input(tmp_path):
    assert_user_error(run("ppad-evaluate", "--run", tmp_path), tmp_path, "not a run folder")
    assert_user_error(run("ppad-evaluate", "--learner", tmp_path / "x.pt"), "--learner needs --preset")
    assert_user_error(run("ppad-evaluate"), "give either --run or --learner")
