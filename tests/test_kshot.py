"ppad-reproduce --shots K1 K2 ...: a k-shot curve (kshot.csv, kshot.png) with its spread over the draws, and hostile k refused up front."
import csv
import json
import statistics

import pytest

from conftest import assert_user_error, run

ARGS = ["--preset", "demo", "--clip-weights", "random:tiny", "--epochs", 1, "--batch-size", 16, "--methods", "ppad"]


def test_kshot_curve_one_row_per_method_and_k(tmp_path):
    out = tmp_path / "kshot"
    result = run("ppad-reproduce", *ARGS, "--shots", 4, 8, "--seeds", 0, 1, "--out", out)
    assert result.returncode == 0, result.stderr
    with open(out / "kshot.csv") as f: rows = list(csv.DictReader(f))
    assert [(r["method"], r["k"], r["draws"]) for r in rows] == [("ppad", "4", "2"), ("ppad", "8", "2")]
    assert (out / "kshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in rows:  # the spread is that of the two draws' own reports
        with open(out / f"k{row['k']}" / "table.csv") as f:
            assert [r["seeds"] for r in csv.DictReader(f) if r["metric"] == "auc"] == ["2"]
        aucs = []
        for seed in (0, 1):
            report = out / f"k{row['k']}" / "ppad" / f"seed{seed}" / "report" / "metrics.json"
            aucs.append(100 * json.loads(report.read_text())["auc"])
            shots = (out / f"k{row['k']}" / "ppad" / f"seed{seed}" / "shots.csv").read_text().strip().splitlines()[1:]
            assert len(shots) == int(row["k"])
        assert float(row["auc_mean_percent"]) == pytest.approx(statistics.mean(aucs), abs=0.01)
        assert float(row["auc_std_percent"]) == pytest.approx(statistics.stdev(aucs), abs=0.01)
        assert float(row["auc_min_percent"]) == pytest.approx(min(aucs), abs=0.01)
        assert float(row["auc_max_percent"]) == pytest.approx(max(aucs), abs=0.01)
    again = run("ppad-reproduce", *ARGS, "--shots", 4, 8, "--seeds", 0, 1, "--out", out)  # every (method, k, seed) is kept
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished run kept") == 4 and "training" not in again.stdout


@pytest.mark.parametrize("shots, message", [
    (["0", "4"], "--shots must be at least 1"),
    (["4", "4"], "--shots lists 4 more than once"),
    (["4", "4.5"], "--shots must be a whole number, not '4.5'"),
    (["4", "65"], "has 64 normal training images, fewer than --shots 65"),
])
def test_hostile_shots_refused_before_anything_is_made(tmp_path, shots, message):
    out = tmp_path / "never"
    assert_user_error(run("ppad-reproduce", *ARGS, "--shots", *shots, "--out", out), message)
    assert not out.exists()


def test_kshot_refuses_splits_and_a_foreign_kshot_csv(tmp_path):
    assert_user_error(run("ppad-reproduce", *ARGS, "--shots", 4, 8, "--splits", tmp_path, "--out", tmp_path / "never"), "--splits fixes the shots")
    (tmp_path / "kshot.csv").write_text("my notes\n")
    assert_user_error(run("ppad-reproduce", *ARGS, "--shots", 4, 8, "--out", tmp_path), "kshot.csv: exists and was not written by reproduce")
    assert (tmp_path / "kshot.csv").read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == ["kshot.csv"]
