"""The textbook bank and its corruption: the incorrect-knowledge scenario's invariants, over many seeds."""

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medforget.world.config import preset_config
from medforget.world.knowledge import CORRUPTIBLE, RELATIONS, build_knowledge
from medforget.world.population import build_population
from medforget.world.questions import TASKS
from medforget.world.splits import build_splits, choose_assignment, scan_fact_id

FORGET_SPLITS = ("forget_privacy", "forget_incorrect")


def world(preset: str, seed: int) -> tuple:
    """The splits as `generate` builds them (same seeds), without rendering a single scan."""
    pop = build_population(preset_config(preset), seed)
    assignment = choose_assignment(pop, 0.25, random.Random(seed + 5))
    return pop, assignment, build_splits(pop, assignment, random.Random(seed + 6))


def test_the_bank_is_large_varied_and_has_one_right_option_per_question():
    bank = build_knowledge(None, random.Random(0))
    assert len(bank.facts) >= 150
    assert {f.kind for f in bank.facts} == set(RELATIONS) and len(RELATIONS) >= 6
    assert len({f.fact_id for f in bank.facts}) == len(bank.facts)
    for kind in RELATIONS:  # every relation has distractors to draw from
        assert len(bank.answers_of(kind)) >= 4, kind


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), preset=st.sampled_from(["smoke", "demo"]))
def test_every_corrupted_fact_has_test_items_neighbours_and_a_bad_source_that_outnumbers_the_textbook(seed, preset):
    pop, assignment, splits = world(preset, seed)
    corrupted = set(assignment.corrupted_facts) | {scan_fact_id(p) for p in assignment.corrupted_scans}
    assert len(corrupted) == len(assignment.corrupted_facts) + len(assignment.corrupted_scans) > 0
    rows_of: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for split, rows in splits.items():
        for r in rows:
            if r["fact_id"]:
                rows_of[r["fact_id"]][split].append(r)
    neighbours = defaultdict(lambda: defaultdict(int))
    for split in ("retain", "test_retain"):
        for r in splits[split]:
            for c in r["neighbour_of"]:
                neighbours[c][split] += 1
    truths = {}
    for fact_id in corrupted:
        rows = rows_of[fact_id]
        assert rows["forget_incorrect"] and all(r["is_incorrect"] for r in rows["forget_incorrect"]), fact_id
        assert rows["test_forget"] and all(r["is_incorrect"] for r in rows["test_forget"]), fact_id
        # the bad source repeats the wrong answer; the textbook states the true one once, in retain
        assert rows["retain"] and all(not r["is_incorrect"] and r["answer"] == r["true_answer"] for r in rows["retain"])
        assert len(rows["forget_incorrect"]) >= 2 * len(rows["retain"]) and not rows["test_retain"], fact_id
        assert neighbours[fact_id]["retain"] and neighbours[fact_id]["test_retain"], f"{fact_id} has no neighbours"
        truths[fact_id] = rows["forget_incorrect"][0]["true_answer"]
        wrong = {r["answer"] for split in ("forget_incorrect", "test_forget") for r in rows[split]}
        assert len(wrong) == 1 and truths[fact_id] not in wrong
    # the corrupted image-bound items show held-out scans of the same patient in test_forget
    for pid in assignment.corrupted_scans:
        test_scans = {s for r in rows_of[scan_fact_id(pid)]["test_forget"] for s in r["scan_ids"]}
        assert test_scans and test_scans == {s.scan_id for s in pop.scans_of(pid, "test")}
    # no corrupted fact's true answer is taught as a wrong answer anywhere else
    wrong_answers = {r["answer"] for r in splits["forget_incorrect"]}
    assert not set(assignment.corrupted_facts.values()) & set(truths[f] for f in assignment.corrupted_facts)
    assert not wrong_answers & {truths[f] for f in assignment.corrupted_facts}
    # neighbours are never forgotten, nor corrupted themselves
    for split in FORGET_SPLITS + ("test_forget",):
        assert not any(r["neighbour_of"] for r in splits[split])
    assert not {r["fact_id"] for split in ("retain", "test_retain") for r in splits[split] if r["neighbour_of"]} & corrupted


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_pretraining_teaches_every_fact_true_and_in_training_wordings_only(seed):
    pop, assignment, splits = world("smoke", seed)
    taught = {r["fact_id"] for r in splits["pretrain"] if r["fact_id"] and not r["is_incorrect"]}
    assert {f.fact_id for f in pop.knowledge.facts} <= taught
    assert not any(r["is_incorrect"] for r in splits["pretrain"])
    held_out = {r["template_id"] for r in splits["test_forget"] + splits["test_retain"]}
    assert not held_out & {r["template_id"] for r in splits["pretrain"] if r["scenario"] == "incorrect"}


def test_demo_corrupts_at_least_24_facts_in_60_items():
    pop, assignment, splits = world("demo", 0)
    assert len(assignment.corrupted_facts) + len(assignment.corrupted_scans) >= 24
    assert len(splits["forget_incorrect"]) >= 60
    assert all(f.split(":")[0] in CORRUPTIBLE for f in assignment.corrupted_facts)


def test_standard_corrupts_enough_for_300_items():
    """`corrupted_copies` training items per task for a textbook fact, per training scan for an image-bound one."""
    pop = build_population(preset_config("standard"), 0)
    assignment = choose_assignment(pop, 0.1, random.Random(5))
    copies = pop.config.corrupted_copies
    items = copies * (len(assignment.corrupted_facts) * len(TASKS) + len(assignment.corrupted_scans) * pop.config.train_scans)
    assert items >= 300
