"""Degenerate reference models, built from score tables instead of trained: what does doing nothing useful score?

A reader of a leaderboard needs to know what a broken model would get: one that guesses MCQ options and
babbles, or one that refuses everything. Their per-item records are synthesised from the vanilla model's
records (same items, same clusters) and scored by the same code as every trained model, so the UES
cannot reward them without it showing on the report.
"""

from __future__ import annotations

import random
import string
from collections import defaultdict
from collections.abc import Mapping, Sequence

from medforget.evaluate.metrics.wellformed import MEMBERSHIP_FIELDS
from medforget.evaluate.summary import split_metrics
from medforget.world.templates import REFUSALS

SEED = 0
RANDOM_GIBBERISH = "random-gibberish"
ALWAYS_REFUSE = "always-refuse"
REFERENCE_NAMES: tuple[str, ...] = (RANDOM_GIBBERISH, ALWAYS_REFUSE)
_CONSONANTS = "".join(c for c in string.ascii_lowercase if c not in "aeiouy")


def _gibberish(rng: random.Random) -> str:
    """A few vowel-less letter runs: no value of any field, no refusal, never the answer."""
    return " ".join("".join(rng.choices(_CONSONANTS, k=7)) for _ in range(rng.randint(2, 4)))


def _blank(record: dict) -> dict:
    """The item with no trace of the vanilla model's scores (no truth ratio, no membership scores)."""
    return {**record, "option_ll": [], "option_ll_norm": [], "truth_ratio": None, "answer_tokens": 0,
            "mia_loss": None, "mia_zlib": None, "mia_min_k": None, "mia_min_k_pp": None}


def _answered(records: Sequence[dict], seed: int, reply) -> list[dict]:
    """Every MCQ answered with a uniformly random option (a fixed seed), every generated answer by `reply`."""
    rng = random.Random(seed)
    out = []
    for r in records:
        rec = _blank(r)
        if r["task"] == "mcq":
            rec["pred_index"] = rng.randrange(r["n_options"])
            rec["prediction"] = ""
        else:
            rec["prediction"] = reply(rng)
        out.append(rec)
    return out


def random_gibberish(records: Sequence[dict], seed: int = SEED) -> list[dict]:
    """Random MCQ options and gibberish generations: knows nothing, says nothing."""
    return _answered(records, seed, _gibberish)


def always_refuse(records: Sequence[dict], seed: int = SEED) -> list[dict]:
    """A refusal for every generated answer; an MCQ cannot be refused, so its option is a random guess."""
    return _answered(records, seed + 1, lambda rng: REFUSALS[0])


def reference_records(vanilla: Sequence[dict], seed: int = SEED) -> dict[str, list[dict]]:
    """Each reference model's records on the vanilla model's items."""
    return {RANDOM_GIBBERISH: random_gibberish(vanilla, seed), ALWAYS_REFUSE: always_refuse(vanilla, seed)}


def reference_metrics(records: Sequence[dict], known: Mapping[str, set[str]]) -> dict:
    """The split metrics `evaluate_model` would write for these records (no membership scores: no model).
    Without the benchmark's known values a closed-set field's reply counts as malformed (none is known)."""
    known = {**{f: set() for f in MEMBERSHIP_FIELDS}, **known}
    by_split: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_split[r["split"]].append(r)
    return {"model": "reference", "reference": True, "splits": {s: split_metrics(rs, known) for s, rs in by_split.items()}}
