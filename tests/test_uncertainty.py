"Bootstrap intervals against an independent percentile bootstrap, one-class resamples, operating points and calibration by hand."
import time

import numpy as np
import pytest
from sklearn import metrics as sk

from ppad_nb.evaluate import (batch_metrics, bootstrap_ci, bootstrap_indices, calibration, compute_metrics, keep_below,
                              operating_points, paired_auc_difference)


def hand_made_scores():
    "A fixed score vector: 200 normals and 150 abnormal images that overlap, scores rounded to 0.01 (ties)."
    rng = np.random.default_rng(2024)
    labels = np.r_[np.zeros(200, int), np.ones(150, int)]
    scores = np.clip(np.r_[rng.normal(0.40, 0.15, 200), rng.normal(0.62, 0.15, 150)], 0, 1).round(2)
    return labels, scores


def independent_bootstrap(labels, scores, resamples=2000, seed=99):
    "A plain loop: stratified resamples with another generator, each metric from its definition, numpy's percentiles."
    rng = np.random.RandomState(seed)
    normals, abnormals = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    values = {"acc": [], "auc": [], "f1": [], "ap": []}
    for _ in range(resamples):
        neg, pos = scores[rng.choice(normals, len(normals))], scores[rng.choice(abnormals, len(abnormals))]
        tp, fp = (pos > 0.5).sum(), (neg > 0.5).sum()
        values["acc"].append((tp + (neg <= 0.5).sum()) / (len(pos) + len(neg)))
        values["f1"].append(2 * tp / (2 * tp + fp + (pos <= 0.5).sum()))
        # AUC: the share of (abnormal, normal) pairs in the right order, ties counting half
        values["auc"].append(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))
        # AP: the mean over abnormal images of the precision among all images scored at least as high
        every = np.sort(np.r_[pos, neg]); positives = np.sort(pos)
        at_least = len(every) - np.searchsorted(every, pos, "left")
        hits = len(positives) - np.searchsorted(positives, pos, "left")
        values["ap"].append(np.mean(hits / at_least))
    return {k: np.percentile(v, [2.5, 97.5]) for k, v in values.items()}


def test_interval_matches_an_independent_percentile_bootstrap_and_holds_the_estimate():
    labels, scores = hand_made_scores()
    ours, theirs, point = bootstrap_ci(labels, scores), independent_bootstrap(labels, scores), compute_metrics(labels, scores)
    for name in ("acc", "auc", "f1", "ap"):
        np.testing.assert_allclose(ours[name], theirs[name], atol=0.01, err_msg=name)
        assert ours[name][0] < point[name] < ours[name][1], (name, ours[name], point[name])
    assert bootstrap_ci(labels, scores) == ours  # seeded: the same report twice
    assert bootstrap_ci(labels, scores, seed=1) != ours


def test_vectorised_metrics_equal_scikit_learn_per_resample():
    labels, scores = hand_made_scores()
    indices = bootstrap_indices(labels, 20, seed=5)
    batch = batch_metrics(labels[indices], scores[indices])
    for b, pick in enumerate(indices):
        l, s = labels[pick], scores[pick]
        assert batch["auc"][b] == pytest.approx(sk.roc_auc_score(l, s), abs=1e-12)
        assert batch["ap"][b] == pytest.approx(sk.average_precision_score(l, s), abs=1e-12)
        assert batch["acc"][b] == pytest.approx(sk.accuracy_score(l, s > 0.5), abs=1e-12)
        assert batch["f1"][b] == pytest.approx(sk.f1_score(l, s > 0.5, zero_division=0), abs=1e-12)


def test_thousand_resamples_of_a_few_hundred_scores_take_well_under_a_second():
    labels, scores = hand_made_scores()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        bootstrap_ci(labels, scores, n_resamples=1000)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.5, timings


@pytest.mark.parametrize("stratified", [True, False])
def test_resamples_always_hold_both_classes_and_never_give_nan(stratified):
    labels = np.r_[np.zeros(11, int), 1]  # one abnormal image: about a third of plain resamples would miss it
    indices = bootstrap_indices(labels, 3000, seed=0, stratified=stratified)
    drawn = labels[indices]
    assert drawn.any(axis=1).all() and (~drawn.astype(bool)).any(axis=1).all()
    values = batch_metrics(drawn, np.linspace(0.05, 0.95, 12)[indices])
    assert not any(np.isnan(v).any() for v in values.values())
    interval = bootstrap_ci(labels, np.linspace(0.05, 0.95, 12))
    assert all(np.isfinite(interval[k]).all() for k in interval)


def test_a_one_class_test_set_is_an_error_not_nan():
    from ppad_nb.safety import PPADError
    with pytest.raises(PPADError, match="needs normal and abnormal images"): bootstrap_ci([0, 0, 0], [0.1, 0.2, 0.3])


def test_operating_points_by_hand():
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.52, 0.7, 0.3, 0.6, 0.75, 0.9])
    heldout = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.42, 0.44, 0.46, 0.5, 0.65])  # ten held-out normals
    points = {p["name"]: p for p in operating_points(labels, scores, heldout)}
    assert list(points) == ["fixed_0.5", "heldout_normals_95", "heldout_normals_90", "test_specificity_90", "test_specificity_95"]
    # 0.5: abnormal calls 0.52, 0.7 (normals), 0.6, 0.75, 0.9 -> TP 3, FP 2, TN 6, FN 1
    assert points["fixed_0.5"] == {"name": "fixed_0.5", "threshold": 0.5, "sensitivity": 3 / 4, "specificity": 6 / 8, "ppv": 3 / 5, "npv": 6 / 7}
    # 95% of 10 held-out normals -> ceil(9.5) = 10th smallest = 0.65: calls 0.7, 0.75, 0.9 -> TP 2, FP 1, TN 7, FN 2
    assert points["heldout_normals_95"] == {"name": "heldout_normals_95", "threshold": 0.65, "sensitivity": 2 / 4,
                                            "specificity": 7 / 8, "ppv": 2 / 3, "npv": 7 / 9}
    # 90% -> 9th smallest = 0.5: the same calls as at 0.5
    assert points["heldout_normals_90"]["threshold"] == 0.5 and points["heldout_normals_90"]["sensitivity"] == 3 / 4
    # test specificity 90% of 8 normals -> ceil(7.2) = 8th smallest = 0.7: calls 0.75, 0.9 -> TP 2, FP 0, TN 8, FN 2
    assert points["test_specificity_90"] == {"name": "test_specificity_90", "threshold": 0.7, "sensitivity": 2 / 4,
                                             "specificity": 1.0, "ppv": 1.0, "npv": 8 / 10}
    assert points["test_specificity_95"]["threshold"] == 0.7
    assert keep_below([0.3, 0.1, 0.2], 0.5) == 0.2  # ceil(1.5) = 2nd smallest
    without = operating_points(labels, scores)
    assert [p["name"] for p in without] == ["fixed_0.5", "test_specificity_90", "test_specificity_95"]


def test_calibration_by_hand():
    labels = [0, 1, 0, 1, 1, 1, 0, 0, 0]
    scores = [0.9, 0.8, 0.1, 0.2, 0.7, 0.6, 0.3, 0.4, 0.5]
    result = calibration(labels, scores, bins=3)
    # sorted: (0.1, 0.2, 0.3) labels 0, 1, 0; (0.4, 0.5, 0.6) 0, 0, 1; (0.7, 0.8, 0.9) 1, 1, 0
    assert [b["n"] for b in result["bins"]] == [3, 3, 3]
    assert [b["mean_score"] for b in result["bins"]] == pytest.approx([0.2, 0.5, 0.8])
    assert [b["fraction_abnormal"] for b in result["bins"]] == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert result["ece"] == pytest.approx((abs(1 / 3 - 0.2) + abs(1 / 3 - 0.5) + abs(2 / 3 - 0.8)) / 3)


def test_paired_difference_of_a_method_with_itself_is_zero_and_of_a_better_one_positive():
    labels, scores = hand_made_scores()
    same = paired_auc_difference(labels, scores, scores)
    assert same == {"difference": 0.0, "ci": [0.0, 0.0]}
    sharper = np.where(labels == 1, np.minimum(scores + 0.15, 1), scores)
    better = paired_auc_difference(labels, sharper, scores)
    assert better["difference"] == pytest.approx(sk.roc_auc_score(labels, sharper) - sk.roc_auc_score(labels, scores))
    assert 0 < better["ci"][0] < better["difference"] < better["ci"][1]
