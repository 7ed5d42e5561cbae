"""benchmarks/seed_stability.py's summaries on hand-made results of three seeds (running them is the script's job)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from scripts import load_script



@pytest.fixture(scope="module")
def script():
    return load_script("seed_stability")


def results(ues: dict[str, float], oracle_ci: tuple[float, float]) -> dict:
    rows = [{"model": "oracle", "kind": "oracle", "ues_privacy": 1.0, "mia_auroc": 0.5,
             "mia_auroc_ci_low": oracle_ci[0], "mia_auroc_ci_high": oracle_ci[1]},
            {"model": "random-gibberish", "kind": "reference", "ues_privacy": 0.0}]
    rows += [{"model": m, "kind": "method", "ues_privacy": v, "leak": 0.0} for m, v in ues.items()]
    return {"leaderboards": {"privacy": {"rows": rows}}}


def test_mean_sd_tau_and_the_oracle_interval(script):
    seeds = [0, 1, 2]
    per_seed = [results({"ga": 0.2, "kl": 0.5, "npo": 0.8}, (0.4, 0.6)),
                results({"ga": 0.4, "kl": 0.6, "npo": 0.7}, (0.45, 0.7)),
                results({"ga": 0.3, "kl": 0.9, "npo": 0.6}, (0.55, 0.8))]
    table = "\n".join(script.table(per_seed, "privacy"))
    assert "ga" in table and "0.300 ± 0.100 (n=3)" in table and "random-gibberish" not in table
    lines = script.ranking(per_seed, "privacy", seeds)
    taus = [line for line in lines if "Kendall tau" in line]
    assert len(taus) == 3 and "seeds 0 vs 1: Kendall tau 1.00 over 3 methods" in taus[0]
    assert "Kendall tau 0.33" in taus[1]  # seeds 0 vs 2: kl and npo swap (one discordant pair of three)
    below = [line for line in lines if "change order" in line]  # 0 vs 2 and 1 vs 2 miss 0.7, by the kl/npo swap
    assert len(below) == 2 and all(line.strip().startswith("1 of 3 pairs") and line.endswith(": kl/npo") for line in below)
    assert "0.7 allows 0" in below[0]
    verdicts = script.oracle_auroc(per_seed, seeds)
    assert [v.rsplit(": ", 1)[1] for v in verdicts] == ["includes 0.5", "includes 0.5", "EXCLUDES 0.5"]


def test_swaps_are_the_discordant_pairs(script):
    a, b = {"x": 0.1, "y": 0.2, "z": 0.3, "w": 0.3}, {"x": 0.3, "y": 0.2, "z": 0.1, "w": 0.5}
    assert set(script.swaps(a, b)) == {("x", "y"), ("x", "z"), ("y", "z")}  # w ties z in a: a tie is not a swap


def test_a_method_against_issue_18s_targets(script):
    def board(mimic_leak: float, mimic_ues: float) -> dict:
        rows = [{"model": "vanilla", "kind": "vanilla", "retain": 0.9, "general": 0.5},
                {"model": "oracle", "kind": "oracle", "leak": 0.0, "forget": 0.2, "retain": 0.9, "general": 0.5},
                {"model": "npo", "kind": "method", "ues_privacy": 0.8},
                {"model": "mimic", "kind": "method", "leak": mimic_leak, "forget": 0.27, "retain": 0.88, "general": 0.49,
                 "ues_privacy": mimic_ues}]
        return {"leaderboards": {"privacy": {"rows": rows}}}

    lines = script.targets([board(0.0, 0.9), board(0.02, 0.7)], [0, 1], "mimic")
    text = "\n".join(lines)
    assert "privacy seed 0: leak                 0.000   target <= 0.01: met" in text
    assert "privacy seed 1: leak                 0.020   target <= 0.01: MISSED by 0.010" in text
    assert "seed 0: forget               0.270   target oracle 0.200 +- 0.05: MISSED by 0.020" in text
    assert "seed 0: retain               0.880   target >= 0.97 x vanilla 0.900: met" in text
    assert "seed 0: general              0.490   target >= 0.99 x vanilla 0.500: MISSED by 0.005" in text
    assert "seed 0: ues_privacy          0.900   target highest (0.900): met" in text
    assert "seed 1: ues_privacy          0.700   target highest (0.800): MISSED by 0.100" in text
    assert "incorrect seed 0: mimic not in this run" in text


def test_no_noise_gives_tau_one_and_sd_zero(script):
    matrix = np.tile(np.array([[0.1], [0.5], [0.9]]), (1, 20))  # 3 methods, 20 identical replicates
    taus, usable = script.noise_ceiling(matrix, count=5)
    assert usable == 20 and len(taus) == 5 and np.allclose(taus, 1.0)
    assert np.allclose([script.replicate_sd(row) for row in matrix], 0.0, atol=1e-12)


def test_known_swaps_and_spread(script):
    a, b = [0.1, 0.2, 0.3], [0.1, 0.3, 0.2]  # b swaps the top two of three methods: one discordant pair of three
    matrix = np.array([a, a, b, b, [np.nan, 0.2, 0.3]]).T
    assert np.allclose(script.ranking_taus(matrix, [(0, 1), (0, 2), (2, 3)]), [1.0, 1 / 3, 1.0])
    taus, usable = script.noise_ceiling(matrix, count=10)
    assert usable == 4 and len(taus) == 2  # the replicate with a NaN is left out; pairs are disjoint
    pairs = script.replicate_pairs(np.arange(10), 3)
    assert len(pairs) == 3 and len({i for p in pairs for i in p}) == 6
    assert script.replicate_sd(np.array([0.1, 0.3, np.nan])) == pytest.approx(np.sqrt(0.02))
    low, high = script.sd_interval([0.1, 0.2, 0.3])
    assert low < 0.1 < high and script.sd_interval([0.1]) is None


def test_the_sampling_section(script):
    """Two methods on three seeds: `noisy` has a within-seed sd of 0.1 (over the 0.03 target), `steady` none."""
    noisy = np.array([0.4, 0.6] * 50)  # sd of the replicates: 0.1005 (ddof=1)
    per_seed = [results({"noisy": 0.5 + d, "steady": 0.9}, (0.4, 0.6)) for d in (0.0, 0.1, -0.1)]
    reps = [{"privacy": {"noisy": noisy, "steady": np.full(100, 0.9)}} for _ in range(3)]
    text = "\n".join(script.sampling(per_seed, reps, [0, 1, 2], pairs=10))
    assert "methods whose within-seed sd alone exceeds 0.03: 1/2" in text
    noisy_line = next(line for line in text.splitlines() if line.strip().startswith("noisy"))
    assert noisy_line.split()[1:3] == ["0.101", "0.101/0.101/0.101"] and noisy_line.split()[3] == "0.100"
    # `steady` is above `noisy` in every replicate: the rankings of two replicates always agree
    assert "seed 0: median 1.00, 5th percentile 1.00 (2 methods, 10 pairs of 100 usable replicates)" in text
    assert "between seeds (point UES): 0 vs 1 1.00, 0 vs 2 1.00, 1 vs 2 1.00" in text
    assert "incorrect" not in text  # no replicates for it: no section


def test_no_run_on_a_missing_folder_is_one_line(script, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["seed_stability.py", "--no-run", "--out", str(tmp_path), "--seeds", "0"])
    with pytest.raises(SystemExit) as exit_:
        script.main()
    assert str(exit_.value.code).startswith("error: seed 0: no run folder") and "\n" not in str(exit_.value.code)
    (tmp_path / "seed-0").mkdir()
    with pytest.raises(SystemExit) as exit_:
        script.main()
    assert "has no results.json" in str(exit_.value.code) and "\n" not in str(exit_.value.code)
