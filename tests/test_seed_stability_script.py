"""benchmarks/seed_stability.py's summaries on hand-made results of three seeds (running them is the script's job)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_stability.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("seed_stability", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
    taus = script.ranking(per_seed, "privacy", seeds)
    assert len(taus) == 3 and "seeds 0 vs 1: Kendall tau 1.00 over 3 methods" in taus[0]
    assert "Kendall tau 0.33" in taus[1]  # seeds 0 vs 2: kl and npo swap (one discordant pair of three)
    verdicts = script.oracle_auroc(per_seed, seeds)
    assert [v.rsplit(": ", 1)[1] for v in verdicts] == ["includes 0.5", "includes 0.5", "EXCLUDES 0.5"]


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
