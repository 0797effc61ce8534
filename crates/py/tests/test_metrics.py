"""The metrics from Python equal `mmrf eval`'s, computed by the same code."""

import csv
import json

import numpy as np
import pytest

import mmrf
from conftest import run


def test_gauc_weights_users_by_impressions():
    users = [0, 0, 1, 1, 1, 2]
    labels = [1, 0, 1, 0, 0, 1]
    scores = [0.9, 0.1, 0.2, 0.8, 0.7, 0.5]
    value, n_users, impressions = mmrf.metrics.gauc(users, labels, scores)
    # User 0 ranks its pair right (AUC 1), user 1 both pairs wrong (AUC 0); user 2 has
    # no pair. Weighted by impressions: (1·2 + 0·3) / 5.
    assert (n_users, impressions) == (2, 5)
    assert value == pytest.approx(0.4)
    assert mmrf.metrics.gauc([0, 0], [1, 1], [0.1, 0.2]) is None


def test_ncis_errors_name_the_impression():
    with pytest.raises(ValueError, match="impression"):
        mmrf.metrics.ncis([0, 1], [1.0, 0.0], [0.5, 0.5], [0.5, 0.0])
    with pytest.raises(ValueError, match="one entry per impression"):
        mmrf.metrics.ncis([0, 1], [1.0], [0.5, 0.5], [0.5, 0.5])


def test_the_metrics_equal_mmrf_evals_on_its_dumped_scores(mmrf_bin, small_world_dir, tmp_path):
    runs = tmp_path / "bc"
    run([mmrf_bin, "train", "--method", "bc", "--data", small_world_dir, "--out", runs, "--set", "epochs=1", "--quiet"])
    dump = tmp_path / "scores.csv"
    report = json.loads(run([mmrf_bin, "eval", "--run", runs, "--data", small_world_dir, "--json", "--dump-scores", dump]))
    with open(dump) as f:
        rows = list(csv.DictReader(f))
    col = lambda name, dtype: np.array([r[name] for r in rows], dtype=dtype)
    users = col("user_id", np.uint32)
    scores, pi, pi_beta = col("score", np.float32), col("pi", np.float32), col("pi_beta", np.float32)
    columns = {
        "Click": "is_click", "Like": "is_like", "Follow": "is_follow", "Comment": "is_comment",
        "Hate": "is_hate", "LongView": "long_view",
    }
    for signal in mmrf.signals():
        if signal == "WatchTime":
            labels = col("play_time_ms", np.float32) / np.float32(1000.0)
        else:
            labels = col(columns[signal], np.float32)
        expected = report["signals"][signal]
        g = mmrf.metrics.gauc(users, labels, scores)
        assert (g[0] if g else None) == pytest.approx(expected["gauc"], abs=1e-12)
        o = mmrf.metrics.ncis(users, labels, pi, pi_beta, cap=report["cap"])
        assert o["ncis"] == pytest.approx(expected["ncis"], rel=1e-12, abs=1e-15)
        assert o["ess"] == pytest.approx(expected["ess"], rel=1e-9)
        assert o["impressions"] == report["impressions"]


def test_nan_scores_labels_and_odd_user_ids_are_refused_by_impression():
    with pytest.raises(ValueError, match="scores: impression 0 is nan"):
        mmrf.metrics.gauc([0, 0], [1.0, 0.0], [float("nan"), 0.2])
    with pytest.raises(ValueError, match="labels: impression 1 is nan"):
        mmrf.metrics.gauc([0, 0], [1.0, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="users: impression 1 has user id 1.5"):
        mmrf.metrics.gauc([0.0, 1.5], [1.0, 0.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="users: impression 0 has user id -1"):
        mmrf.metrics.ncis([-1, 0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5])
    # Whole-number floats are user ids.
    assert mmrf.metrics.gauc([0.0, 0.0], [1.0, 0.0], [0.9, 0.2])[0] == 1.0
    with pytest.raises(ValueError, match="bootstrap 1000000000000: at most 100000 resamples"):
        mmrf.metrics.ncis([0, 0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5], bootstrap=10**12)
