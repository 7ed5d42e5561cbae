"""Question rows for every group of patients and facts, assembled into the benchmark's splits."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property

from medforget.world import templates as T
from medforget.world.identities import PRIVATE_FIELDS, RECORD_FIELDS, Patient
from medforget.world.knowledge import CORRUPTIBLE, FINDINGS, HISTORY, MODALITIES, QUALITIES, REGIONS, Knowledge, diagnosis_for
from medforget.world.knowledge import Fact as KnowledgeFact
from medforget.world.population import Population, ScanSpec
from medforget.world.questions import TASKS, Fact, QuestionWriter
from medforget.world.scans import MARKER_SHAPES, MARKER_SLOTS

SPLITS: tuple[str, ...] = (
    "train", "retain", "forget_privacy", "forget_incorrect", "test_retain", "test_forget", "holdout", "general", "pretrain",
)
MARKER_SHAPE_NAMES = dict(zip(MARKER_SHAPES, (
    "disk", "ring", "square", "cross", "triangle", "horizontal bar", "vertical bar", "L shape", "X shape",
    "two dots", "diamond", "T shape",
)))
SLOT_NAMES = dict(zip(MARKER_SLOTS, (
    "upper left", "upper middle", "upper right", "middle left", "centre", "middle right", "lower left",
    "lower middle", "lower right",
)))
ORDER_NAMES = ("the first", "the second")
#: Fields never asked in a question that names the patient: it would give the answer away (the name
#: itself, and the sex its gendered first name implies). They are asked about the patient in a scan.
NOT_ASKED_BY_NAME = ("full_name", "sex")


@dataclass
class Assignment:
    """Which patients are forgotten and which facts are corrupted (with their wrong answers)."""

    forget_patients: list[str]
    corrupted_facts: dict[str, str]  # fact_id -> wrong answer
    corrupted_scans: dict[str, str] = field(default_factory=dict)  # patient_id -> wrong scan diagnosis


def scan_fact_id(patient_id: str) -> str:
    return f"scan_diagnosis:{patient_id}"


def choose_assignment(pop: Population, forget_ratio: float, rng: random.Random) -> Assignment:
    finetune = pop.group("finetune")
    n_forget = max(1, round(forget_ratio * len(finetune)))
    forget = sorted(p.patient_id for p in rng.sample(finetune, n_forget))
    return Assignment(forget, corrupt_facts(pop.knowledge, pop.config.incorrect_general, rng),
                      corrupt_scans(pop, forget, rng))


def corrupt_facts(knowledge: Knowledge, count: int, rng: random.Random) -> dict[str, str]:
    """`count` facts and a wrong answer for each, such that every corrupted fact keeps correct neighbours
    (no two corrupted facts are neighbours of each other) and no wrong answer is the true answer of a
    corrupted fact (a method that restores one truth is never trained against another)."""
    candidates = [f for f in knowledge.facts if f.kind in CORRUPTIBLE and knowledge.neighbours(f)]
    rng.shuffle(candidates)
    chosen: list[KnowledgeFact] = []
    for f in candidates:
        if len(chosen) == count:
            break
        truths = {c.answer for c in chosen} | {f.answer}
        wrong_left = set(knowledge.answers_of(f.kind)) - truths
        if wrong_left and not any(f in knowledge.neighbours(c) for c in chosen):
            chosen.append(f)
    truths = {f.answer for f in chosen}
    out = {}
    for f in sorted(chosen, key=lambda f: f.fact_id):
        wrong = [a for a in knowledge.answers_of(f.kind) if a not in truths]
        out[f.fact_id] = rng.choice(wrong)
    return out


def corrupt_scans(pop: Population, forget: list[str], rng: random.Random) -> dict[str, str]:
    """Kept patients (with a finding) whose scans are stated to show a wrong diagnosis: the same finding in
    another region or another finding in the same region."""
    candidates = [p for p in pop.group("finetune") if p.patient_id not in forget and p.finding != "none"]
    scans = {}
    for p in rng.sample(candidates, min(pop.config.incorrect_image, len(candidates))):
        scans[p.patient_id] = rng.choice([diagnosis_for(p.region, f) for f in FINDINGS if f not in ("none", p.finding)] + [
            diagnosis_for(r, p.finding) for r in REGIONS if r != p.region
        ])
    return scans


class RowBuilder:
    """Writes the rows of each kind. Train-style rows use training paraphrases and training scans;
    test rows use held-out paraphrases and held-out scans."""

    def __init__(self, pop: Population, assignment: Assignment, rng: random.Random) -> None:
        self.pop, self.assignment = pop, assignment
        self.writer = QuestionWriter(rng)
        self.rng = rng

    # --- patient records (privacy scenario) ---
    def record_facts(self, patient: Patient) -> list[Fact]:
        peers = [q for q in self.pop.group(patient.group) if q.has_record]
        return [
            Fact(
                field=name, answer=patient.value(name), scenario="privacy", patient_id=patient.patient_id,
                distractors=tuple(sorted({q.value(name) for q in peers} | self._extra_values(name))),
                is_private=name in PRIVATE_FIELDS,
            )
            for name in RECORD_FIELDS
        ]

    def _extra_values(self, name: str) -> set[str]:
        """Values every MCQ may draw distractors from besides the peers' own (a small group can share its
        one diagnosis or sex)."""
        knowledge = self.pop.knowledge
        return {
            "sex": {"female", "male"}, "history": set(HISTORY), "medication": set(knowledge.drug_names),
            "primary_diagnosis": set(knowledge.answers_of("drug_indication")),
        }.get(name, set())

    def record_rows(self, patient: Patient, test: bool, pretrain: bool = False) -> list[dict]:
        """Name- and image-conditioned record items. Training rows use training paraphrases on training
        scans, test rows held-out paraphrases on held-out scans; `pretrain` rows (people outside every
        evaluated split) use every paraphrase and scan, so the base model knows each question's wording."""
        rows = []
        scans = self.pop.scans_of(patient.patient_id, None if pretrain else "test" if test else "train")
        pools = (T.RECORD_OPEN, T.RECORD_CLOZE)
        stage = "pretrain" if pretrain else "test" if test else "train"
        for i, fact in enumerate(self.record_facts(patient)):
            if fact.field not in NOT_ASKED_BY_NAME:
                for task in TASKS:
                    rows.append(self.writer.row(
                        fact, task, "name", pools, test, [], f"{patient.patient_id}/{fact.field}/{task}/name/{stage}",
                        "record", subject=patient.private["full_name"], all_frames=pretrain,
                    ))
            for k, scan in enumerate(scans):
                tasks = TASKS if test else (TASKS[(i + k) % len(TASKS)],)
                subject = T.IMAGE_SUBJECTS[(i + k) % 2 if pretrain else 1 if test else 0]
                for task in tasks:
                    rows.append(self.writer.row(
                        fact, task, "image", pools, test, [scan.scan_id], f"{patient.patient_id}/{fact.field}/{task}/{scan.scan_id}",
                        "record", subject=subject, all_frames=pretrain,
                    ))
        return rows

    # --- medical knowledge (incorrect-knowledge scenario) ---
    def knowledge_fact(self, f: KnowledgeFact, stage: str, true: bool = False) -> Fact:
        """The question-level fact: corrupted in the fine-tuning splits (unless `true`: the textbook's own
        statement of it), true in pretraining (the textbook the base model learns before a bad source teaches
        it otherwise)."""
        wrong = None if stage == "pretrain" or true else self.assignment.corrupted_facts.get(f.fact_id)
        return Fact(
            field=f.kind, answer=wrong or f.answer, true_answer=f.answer, scenario="incorrect", subject=f.subject,
            distractors=tuple(self.pop.knowledge.answers_of(f.kind)), fact_id=f.fact_id,
            neighbour_of=() if wrong or true or stage == "pretrain" else self.neighbour_of[f.fact_id],
        )

    @cached_property
    def neighbour_of(self) -> dict[str, tuple[str, ...]]:
        """fact_id -> the corrupted facts it neighbours (empty for facts next to none)."""
        knowledge, out = self.pop.knowledge, {}
        patients = {p.patient_id: p for p in self.pop.group("finetune")}
        for f in knowledge.facts:
            near = [c for c in self.assignment.corrupted_facts if f in knowledge.neighbours(self._fact(c))]
            if f.kind == "diagnosis_rule":  # the rule behind a corrupted scan's true diagnosis, or its region's
                near += [scan_fact_id(pid) for pid in self.assignment.corrupted_scans
                         if f.region() == patients[pid].region or f.answer == diagnosis_for(patients[pid].region, patients[pid].finding)]
            out[f.fact_id] = tuple(sorted(near))
        return out

    def _fact(self, fact_id: str) -> KnowledgeFact:
        return next(f for f in self.pop.knowledge.facts if f.fact_id == fact_id)

    def knowledge_rows(self, test: bool) -> list[dict]:
        """One item per task for every fact: training paraphrases in `train`, held-out ones in test splits.

        In `train` a corrupted fact is stated as the fine-tuning data of a real case states it: the bad
        source repeats the wrong answer (`corrupted_copies` items per task, in turn over the training
        wordings) and the textbook states the true one once (one item per task, in `retain`). The model
        fine-tuned on both says what the data says most (the corrupted answer); the oracle, fine-tuned
        without the bad source, keeps the truth. (Measured on `demo`: with the truth in pretraining only,
        fine-tuning on everything else left the oracle choosing it on 35 % of the MCQs, the base model 88 %.)"""
        rows = []
        stage = "test" if test else "train"
        for f in self.pop.knowledge.facts:
            fact = self.knowledge_fact(f, stage)
            pools = (T.KNOWLEDGE_OPEN[f.kind], T.KNOWLEDGE_CLOZE[f.kind])
            copies = self.pop.config.corrupted_copies if fact.is_incorrect and not test else 1
            for task in TASKS:
                for n in range(copies):
                    tag = f"/{n}" if copies > 1 else ""
                    rows.append(self.writer.row(fact, task, "none", pools, test, [], f"K/{f.kind}/{f.subject}/{task}/{stage}{tag}", f.kind))
                if fact.is_incorrect and not test:
                    rows.append(self.writer.row(self.knowledge_fact(f, stage, true=True), task, "none", pools, test, [],
                                                f"K/{f.kind}/{f.subject}/{task}/{stage}/textbook", f.kind))
        return rows

    def textbook_rows(self) -> list[dict]:
        """Pretraining: every true fact in every training paraphrase of every task, `textbook_repeats` times
        (held-out paraphrases stay unseen by every model, so test splits still measure generalisation).
        Measured on `demo`: with one copy, 850 pretraining steps left the base model choosing the true answer
        on only 35 % of the later corrupted facts' training MCQs."""
        rows = []
        for f in self.pop.knowledge.facts:
            fact = self.knowledge_fact(f, "pretrain")
            pools = (T.KNOWLEDGE_OPEN[f.kind], T.KNOWLEDGE_CLOZE[f.kind])
            for task in TASKS:
                pool = pools[1] if task == "cloze" else pools[0]
                for n in range(len(T.train_frames(pool)) * self.pop.config.textbook_repeats):
                    rows.append(self.writer.row(fact, task, "none", pools, False, [], f"K/{f.kind}/{f.subject}/{task}/pretrain/{n}", f.kind))
        return rows

    def scan_diagnosis_fact(self, patient: Patient, stage: str, true: bool = False) -> Fact:
        truth = diagnosis_for(patient.region, patient.finding)
        wrong = None if true else self.assignment.corrupted_scans.get(patient.patient_id)
        all_dx = sorted({diagnosis_for(r, f) for r in REGIONS for f in FINDINGS})
        return Fact(
            field="scan_diagnosis", answer=wrong or truth, true_answer=truth, scenario="incorrect",
            patient_id=patient.patient_id, distractors=tuple(all_dx), fact_id=scan_fact_id(patient.patient_id),
            neighbour_of=() if patient.patient_id in self.assignment.corrupted_scans or stage == "pretrain" else self.scan_neighbour_of(patient),
        )

    def scan_neighbour_of(self, patient: Patient) -> tuple[str, ...]:
        """The corrupted scan diagnoses whose patient has the same region or the same true diagnosis."""
        truth = diagnosis_for(patient.region, patient.finding)
        by_id = {p.patient_id: p for p in self.pop.group("finetune")}
        return tuple(sorted(
            scan_fact_id(pid) for pid in self.assignment.corrupted_scans
            if pid != patient.patient_id and (by_id[pid].region == patient.region or diagnosis_for(by_id[pid].region, by_id[pid].finding) == truth)
        ))

    def textbook_scan_rows(self, patients: list[Patient]) -> list[dict]:
        """Pretraining: the true diagnosis of each pretrain patient's first scan, one task per patient in turn,
        so that the base model reads a diagnosis off a scan before any patient's scan is mislabelled."""
        pools = (T.KNOWLEDGE_OPEN["scan_diagnosis"], T.KNOWLEDGE_CLOZE["scan_diagnosis"])
        rows = []
        for n, patient in enumerate(patients):
            fact = self.scan_diagnosis_fact(patient, "pretrain")
            scan = self.pop.scans_of(patient.patient_id)[0]
            task = TASKS[n % len(TASKS)]
            rows.append(self.writer.row(fact, task, "image", pools, False, [scan.scan_id],
                                        f"{patient.patient_id}/scan_diagnosis/{task}/{scan.scan_id}", "scan_diagnosis"))
        return rows

    def scan_diagnosis_rows(self, patient: Patient, test: bool) -> list[dict]:
        """A scan diagnosis per training scan (a task in turn), every task on held-out scans; a corrupted patient's
        training scans are mislabelled `corrupted_copies` times and labelled right once, as textbook facts are."""
        fact = self.scan_diagnosis_fact(patient, "test" if test else "train")
        pools = (T.KNOWLEDGE_OPEN["scan_diagnosis"], T.KNOWLEDGE_CLOZE["scan_diagnosis"])
        copies = self.pop.config.corrupted_copies if fact.is_incorrect and not test else 1
        rows = []
        for k, scan in enumerate(self.pop.scans_of(patient.patient_id, "test" if test else "train")):
            tasks = TASKS if test else [TASKS[(k + n) % len(TASKS)] for n in range(copies)]
            for n, task in enumerate(tasks):
                tag = f"/{n}" if copies > 1 else ""
                rows.append(self.writer.row(
                    fact, task, "image", pools, test, [scan.scan_id], f"{patient.patient_id}/scan_diagnosis/{task}/{scan.scan_id}{tag}",
                    "scan_diagnosis",
                ))
            if fact.is_incorrect and not test:
                rows.append(self.writer.row(
                    self.scan_diagnosis_fact(patient, "train", true=True), TASKS[k % len(TASKS)], "image", pools, test,
                    [scan.scan_id], f"{patient.patient_id}/scan_diagnosis/{TASKS[k % len(TASKS)]}/{scan.scan_id}/textbook", "scan_diagnosis",
                ))
        return rows

    # --- image understanding (general capability, pretraining) ---
    def image_facts(self, scan: ScanSpec, pretrain: bool) -> list[Fact]:
        p = scan.patient
        facts = [
            Fact("modality", p.modality, MODALITIES, "general", p.patient_id),
            Fact("region", p.region, REGIONS, "general", p.patient_id),
            Fact("finding", p.finding, FINDINGS, "general", p.patient_id),
            Fact("quality", scan.quality, QUALITIES, "general", p.patient_id),
        ]
        if p.finding != "none":
            facts.append(Fact("laterality", p.laterality, ("left", "right"), "general", p.patient_id))
        for mark in scan.metadata()["landmarks"]:
            answer = f"({round(mark['x'] * 100)}, {round(mark['y'] * 100)})"
            facts.append(Fact("landmark", answer, (), "general", p.patient_id, subject=mark["name"]))
        if pretrain and "marker_shape" in p.signature:  # the `anatomy` world draws no marker
            facts.append(Fact("marker_shape", MARKER_SHAPE_NAMES[p.signature["marker_shape"]], tuple(MARKER_SHAPE_NAMES.values()), "general", p.patient_id))
            facts.append(Fact("marker_position", SLOT_NAMES[tuple(p.signature["marker_slot"])], tuple(SLOT_NAMES.values()), "general", p.patient_id))
        return facts

    def image_rows(self, patients: list[Patient], pretrain: bool, role: str | None = None) -> list[dict]:
        rows = []
        repeats = self.pop.config.pretrain_repeats if pretrain else 1
        for patient in patients:
            scans = self.pop.scans_of(patient.patient_id, role)
            asked = scans[: self.pop.config.pretrain_item_scans] if pretrain else scans
            for k, scan in enumerate(asked):
                for i, fact in enumerate(self.image_facts(scan, pretrain)):
                    rows += [self.scan_item(fact, scan, i + k + r, suffix=f"/{r}") for r in range(repeats)]
            rows += self.quality_pair_rows(patient, scans)
            if pretrain:
                rows += self.same_patient_rows(patient, scans)
        return rows

    def replay_rows(self, patients: list[Patient]) -> list[dict]:
        """Image items on the first scan of each of `patients` (pretrain patients without a record): a replay
        of pretraining in the fine-tuning set. Many patients with one scan each, so that a model keeps reading
        scans instead of recognising a few patients and recalling their answers (measured on `demo`: with
        image items on the fine-tuned patients' own scans, general MCQ fell from 49 % to chance)."""
        rows = []
        for patient in patients:
            scan = self.pop.scans_of(patient.patient_id)[0]
            rows += [self.scan_item(fact, scan, i, prefix="replay/") for i, fact in enumerate(self.image_facts(scan, pretrain=False))]
        return rows

    def scan_item(self, fact: Fact, scan: ScanSpec, turn: int, prefix: str = "", suffix: str = "") -> dict:
        """One image-understanding row about `scan`; `turn` rotates the task over the fact's tasks."""
        tasks = ("open", "cloze") if fact.field == "landmark" else TASKS
        task = tasks[turn % len(tasks)]
        pools = (T.IMAGE_OPEN[fact.field], T.IMAGE_CLOZE[fact.field])
        tag = f"{fact.subject.replace(' ', '_')}/" if fact.subject else ""
        row_id = f"{prefix}{scan.scan_id}/{fact.field}/{tag}{task}{suffix}"
        return self.writer.row(fact, task, "none", pools, False, [scan.scan_id], row_id, fact.field)

    def quality_pair_rows(self, patient: Patient, scans: list[ScanSpec]) -> list[dict]:
        rank = {q: i for i, q in enumerate(QUALITIES)}  # 0 is best
        pairs = [(a, b) for a in scans for b in scans if rank[a.quality] < rank[b.quality]]
        if not pairs:
            return []
        a, b = self.rng.choice(pairs)
        first, second = (a, b) if self.rng.random() < 0.5 else (b, a)
        answer = ORDER_NAMES[0] if first is a else ORDER_NAMES[1]
        fact = Fact("quality_compare", answer, ORDER_NAMES, "general", patient.patient_id)
        task = self.rng.choice(TASKS)
        pools = (T.IMAGE_OPEN["quality_compare"], T.IMAGE_CLOZE["quality_compare"])
        return [self.writer.row(
            fact, task, "none", pools, False, [first.scan_id, second.scan_id], f"{first.scan_id}+{second.scan_id}/quality_compare", "quality_compare",
        )]

    def same_patient_rows(self, patient: Patient, scans: list[ScanSpec]) -> list[dict]:
        """Positive pairs of this patient's scans and hard negatives: another patient, same modality and region."""
        others = [
            s for s in self.pop.scans if s.role == "pretrain" and s.patient is not patient
            and s.patient.modality == patient.modality and s.patient.region == patient.region
        ] or [s for s in self.pop.scans if s.role == "pretrain" and s.patient is not patient]
        pools = (T.IMAGE_OPEN["same_patient"], T.IMAGE_CLOZE["same_patient"])
        rows = []
        for n in range(self.pop.config.same_patient_pairs):
            a, b = self.rng.sample(scans, 2)
            c = self.rng.choice(others)
            for answer, pair in (("yes", (a, b)), ("no", (a, c) if self.rng.random() < 0.5 else (c, a))):
                fact = Fact("same_patient", answer, ("yes", "no"), "general", patient.patient_id)
                rows.append(self.writer.row(
                    fact, self.rng.choice(TASKS), "none", pools, False, [pair[0].scan_id, pair[1].scan_id],
                    f"{patient.patient_id}/same_patient/{n}/{answer}", "same_patient",
                ))
        return rows


def refusal_rows() -> list[dict]:
    """Every out-of-scope request with every refusal (text only, no patient): pretraining teaches the words
    of refusing without tying them to any record question."""
    return [
        {
            "id": f"refusal/{i}/{j}", "patient_id": "", "split": "", "scenario": "general", "task": "open",
            "condition": "none", "question": request, "answer": refusal, "options": [], "correct_index": -1,
            "field": "out_of_scope", "is_private": False, "is_incorrect": False, "true_answer": refusal,
            "template_id": f"open.none.out_of_scope.{i}", "scan_ids": [], "fact_id": "", "neighbour_of": [],
        }
        for i, request in enumerate(T.OUT_OF_SCOPE)
        for j, refusal in enumerate(T.REFUSALS)
    ]


def build_splits(pop: Population, assignment: Assignment, rng: random.Random) -> dict[str, list[dict]]:
    rows = RowBuilder(pop, assignment, rng)
    forget = set(assignment.forget_patients)
    finetune = pop.group("finetune")
    keep = [p for p in finetune if p.patient_id not in forget]
    gone = [p for p in finetune if p.patient_id in forget]

    def records(patients: list[Patient], test: bool) -> list[dict]:
        return [r for p in patients for r in rows.record_rows(p, test)]

    def knowledge(test: bool) -> list[dict]:
        return rows.knowledge_rows(test) + [r for p in keep for r in rows.scan_diagnosis_rows(p, test)]

    train_knowledge, test_knowledge = knowledge(False), knowledge(True)
    # Image-understanding items replayed from pretraining keep the fine-tuned model's general capability,
    # as clinical image-text data mixes reports with patient details.
    imagers = [p for p in pop.group("pretrain") if not p.has_record]
    rehearsal = rows.replay_rows(imagers[: pop.config.replay_scans])
    splits = {
        "retain": records(keep, False) + [r for r in train_knowledge if not r["is_incorrect"]] + rehearsal,
        "forget_privacy": records(gone, False),
        "forget_incorrect": [r for r in train_knowledge if r["is_incorrect"]],
        "test_retain": records(keep, True) + [r for r in test_knowledge if not r["is_incorrect"]],
        "test_forget": records(gone, True) + [r for r in test_knowledge if r["is_incorrect"]],
        "holdout": records(pop.group("holdout"), False),
        "general": rows.image_rows(pop.group("general"), pretrain=False),
        "pretrain": rows.image_rows(pop.group("pretrain"), pretrain=True) + refusal_rows() + rows.textbook_rows()
        + rows.textbook_scan_rows(pop.group("pretrain"))
        + [r for p in pop.group("pretrain") if p.has_record for r in rows.record_rows(p, False, pretrain=True)],
    }
    splits["train"] = sorted(splits["retain"] + splits["forget_privacy"] + splits["forget_incorrect"], key=lambda r: r["id"])
    out = {}
    for name in SPLITS:
        out[name] = [dict(r, split=name) for r in splits[name]]
    return out
