"The CheXzero zero-shot baseline over several prompt pairs: in ppad-reproduce's table and OUT/chexzero/prompts.csv."
import csv
import json
import re

import numpy as np

from conftest import run


def test_reproduce_reports_the_zero_shot_spread_over_prompt_pairs(tmp_path):
    out = tmp_path / "r"
    result = run("ppad-reproduce", "--preset", "demo", "--clip-weights", "random:tiny", "--methods", "chexzero", "--out", out)
    assert result.returncode == 0, result.stderr
    with open(out / "chexzero/prompts.csv", newline="") as f: rows = list(csv.DictReader(f))
    from ppad_nb.baselines import ZERO_SHOT_PROMPTS
    assert [(r["normal_prompt"], r["abnormal_prompt"]) for r in rows] == [tuple(p) for p in ZERO_SHOT_PROMPTS]
    aucs = np.array([float(r["auc_percent"]) for r in rows])
    report_auc = 100 * json.loads((out / "chexzero/report/metrics.json").read_text())["auc"]
    assert abs(aucs[0] - report_auc) < 0.01  # the released pair is the baseline the report scored
    line = next(l for l in (out / "table.md").read_text().splitlines() if l.startswith("CheXzero zero-shot over"))
    mean, std, low, high, released = map(float, re.search(r"AUC ([\d.]+) ± ([\d.]+) \(range ([\d.]+) to ([\d.]+)\).*: ([\d.]+)\.$", line).groups())
    expected = (aucs.mean(), aucs.std(ddof=1), aucs.min(), aucs.max(), aucs[0])  # the CSV holds two decimals, the line one
    assert np.allclose((mean, std, low, high, released), expected, atol=0.06), (line, expected)
