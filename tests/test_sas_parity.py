"""SAS is faithful: the kit's draws on a uniform grey image follow the official routine's distribution.

tests/fixtures/parity-tiny/sas_grey_stats.csv holds 400 draws of the official SAS code (github.com/sunzc-sunny/PPAD) on a
uniform mid-grey 224 x 224 image: region, strength, number of changed pixels, their bounding box and mean value.
"""
import csv

import numpy as np
import pytest
from scipy.stats import ks_2samp

from conftest import FIXTURES
from ppad_nb.data import REGION_BOXES
from ppad_nb.synthesis import STRENGTHS, synthesize_anomaly

DRAWS = 600
GREY = 128


@pytest.fixture(scope="module")
def official():
    with open(FIXTURES / "parity-tiny" / "sas_grey_stats.csv") as f:
        rows = list(csv.DictReader(f))
    return [{"region": int(r["region"]), "weight": float(r["weight"]), "changed_pixels": int(r["changed_pixels"]),
             "box": tuple(int(r[k]) for k in ("row_min", "row_max", "col_min", "col_max")),
             "mean_changed_value": float(r["mean_changed_value"])} for r in rows]


@pytest.fixture(scope="module")
def ours():
    image = np.full((224, 224), GREY, np.uint8)
    rng = np.random.default_rng(20241)
    rows = []
    for _ in range(DRAWS):
        region = int(rng.integers(5))
        result = synthesize_anomaly(image, region, rng=rng)
        changed = np.argwhere(result.image != image)
        rows.append({"region": region, "weight": result.strength, "changed_pixels": len(changed),
                     "box": (changed[:, 0].min(), changed[:, 0].max(), changed[:, 1].min(), changed[:, 1].max()),
                     "mean_changed_value": float(result.image[result.image != image].mean())})
    return rows


def test_fixture_is_what_the_readme_says(official):
    assert len(official) == 400
    assert {r["weight"] for r in official} == set(STRENGTHS)
    assert {r["region"] for r in official} == set(range(5))


@pytest.mark.parametrize("sign", [-1, 1], ids=["brightening", "darkening"])
def test_changed_pixel_counts_match_official_distribution(official, ours, sign):
    a = [r["changed_pixels"] for r in ours if np.sign(r["weight"]) == sign]
    b = [r["changed_pixels"] for r in official if np.sign(r["weight"]) == sign]
    assert len(a) > 250 and len(b) > 150
    result = ks_2samp(a, b)
    assert result.pvalue > 0.01, (result, np.median(a), np.median(b))


def test_strength_sign_decides_direction(official, ours):
    for rows in (official, ours):
        assert all(r["mean_changed_value"] > GREY for r in rows if r["weight"] < 0)
        assert all(r["mean_changed_value"] < GREY for r in rows if r["weight"] > 0)


def test_strengths_drawn_uniformly(ours):
    counts = np.array([sum(r["weight"] == w for r in ours) for w in STRENGTHS])
    assert counts.min() > DRAWS / 4 * 0.75, counts


def share_centred_in_region(rows):
    inside = []
    for r in rows:
        (top, bottom), (left, right) = REGION_BOXES[r["region"]]
        row_min, row_max, col_min, col_max = r["box"]
        inside.append(top <= (row_min + row_max) / 2 <= bottom and left <= (col_min + col_max) / 2 <= right)
    return float(np.mean(inside))


def test_share_of_blobs_centred_in_their_region_matches_official(official, ours):
    theirs, mine = share_centred_in_region(official), share_centred_in_region(ours)
    assert abs(theirs - mine) <= 0.05, (theirs, mine)
