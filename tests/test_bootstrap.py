"""Cluster bootstrap: resampling units, reproducibility, and intervals that widen for clustered items."""

import numpy as np

from medforget.evaluate.bootstrap import Resampler, cluster_key, interval


def records(n_clusters: int, per: int) -> list[dict]:
    return [{"id": f"{c}-{i}", "patient_id": f"P{c}", "fact_id": ""} for c in range(n_clusters) for i in range(per)]


def test_cluster_key_prefers_the_fact_then_the_patient():
    assert cluster_key({"fact_id": "F1", "patient_id": "P1"}) == "fact:F1"
    assert cluster_key({"fact_id": "", "patient_id": "P1"}) == "patient:P1"
    assert cluster_key({"id": "x"}) == "item:x"


def test_resamples_are_seeded_and_shared():
    recs = records(20, 3)
    a, b = Resampler.for_records(recs, n=100), Resampler.for_records(recs, n=100)
    assert np.array_equal(a.weights, b.weights) and a.weights.sum(axis=1).tolist() == [20.0] * 100


def test_items_of_one_patient_move_together_so_the_interval_is_wider():
    # Each patient answers all its 5 items right or all wrong: 10 effective units, not 50.
    recs = records(10, 5)
    values = [int(r["patient_id"][1:]) % 2 for r in recs]
    clustered = interval(Resampler.for_records(recs).means(recs, values))
    independent = [{**r, "patient_id": r["id"]} for r in recs]
    naive = interval(Resampler.for_records(independent).means(independent, values))
    assert clustered[0] < 0.5 < clustered[1]
    assert clustered[1] - clustered[0] > 1.5 * (naive[1] - naive[0])


def test_one_cluster_or_none_gives_no_interval():
    recs = records(1, 5)
    assert interval(Resampler.for_records(recs).means(recs, [1, 0, 1, 0, 1])) is None
    assert interval(Resampler.for_records(recs).means([], [])) is None
