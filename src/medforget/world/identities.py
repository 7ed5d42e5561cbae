"""Synthetic patients: identity and private details from a seeded Faker, plus a clinical record.

Values are kept in one compact format per field (a fixed phone shape, ISO dates, street + city addresses)
so that a model can memorise them exactly and an evaluator can find them in free text. No value contains a
piece of the patient's own name: a question that names the patient must not hand over its answer, so the
next of kin has a family name of their own and the e-mail handle is not built from the patient's names.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Set
from dataclasses import dataclass, field

from faker import Faker

from medforget.evaluate.metrics.leak import name_tokens
from medforget.world.knowledge import HISTORY, Knowledge

PRIVATE_FIELDS: tuple[str, ...] = (
    "full_name", "sex", "date_of_birth", "address", "phone", "email", "mrn", "insurance_id",
    "next_of_kin", "attending_physician", "hospital",
)
CLINICAL_FIELDS: tuple[str, ...] = ("primary_diagnosis", "history", "medication")
RECORD_FIELDS: tuple[str, ...] = PRIVATE_FIELDS + CLINICAL_FIELDS

#: Next-of-kin relations where a family name other than the patient's is usual (kept or changed at marriage,
#: or no family tie at all); all are kinship words that leak detection does not count as name evidence.
RELATIONS = ("spouse", "partner", "daughter", "sister", "mother", "friend", "guardian")
EMAIL_DOMAINS = ("mailbox.org", "example.net", "postmail.com", "inbox.net", "webmail.org")
_DOB_START = dt.date(1940, 1, 1)
_DOB_END = dt.date(2004, 12, 31)


@dataclass
class Patient:
    """One synthetic patient. Private details are empty for patients of the image-only groups."""

    patient_id: str
    group: str  # finetune | holdout | general | pretrain
    region: str
    modality: str
    finding: str
    laterality: str
    location: str
    size_mm: float
    signature: dict
    private: dict[str, str] = field(default_factory=dict)
    clinical: dict[str, str] = field(default_factory=dict)

    @property
    def has_record(self) -> bool:
        return bool(self.private)

    def value(self, name: str) -> str:
        return self.private.get(name) or self.clinical[name]


class IdentityFactory:
    """Draws unique identities from one seeded Faker; the same seed gives the same people."""

    def __init__(self, seed: int, hospitals: int = 6) -> None:
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)
        self._names: set[str] = set()
        self._numbers: set[str] = set()
        self._handles: set[str] = set()
        self.hospitals = [self._hospital_name() for _ in range(hospitals)]
        self.physicians = [f"Dr. {self.fake.first_name()} {self.fake.last_name()}" for _ in range(hospitals * 2)]

    def _hospital_name(self) -> str:
        kind = self.rng.choice(("General Hospital", "Medical Center", "University Hospital", "Clinic"))
        return f"{self.fake.city()} {kind}"

    def _draw(self, make: Callable[[], str], seen: set[str] | None = None, avoid: Set[str] = frozenset()) -> str:
        """A value of ``make`` apart from the name tokens ``avoid`` and, if ``seen`` is given, new (then added)."""
        for _ in range(1000):
            value = make()
            if (seen is None or value not in seen) and _apart(value, avoid):
                if seen is not None:
                    seen.add(value)
                return value
        raise RuntimeError("identity space exhausted")  # pragma: no cover - 1000 collisions in a row

    def _pick(self, pool: list[str], avoid: Set[str]) -> str:
        return self.rng.choice([value for value in pool if _apart(value, avoid)])

    def private_details(self) -> dict[str, str]:
        sex = self.rng.choice(("female", "male"))
        first = self.fake.first_name_female if sex == "female" else self.fake.first_name_male

        full_name = self._draw(lambda: f"{first()} {self.fake.last_name()}", self._names)
        own = name_tokens(full_name)
        dob = self.fake.date_between_dates(_DOB_START, _DOB_END)
        return {
            "full_name": full_name,
            "sex": sex,
            "date_of_birth": dob.isoformat(),
            "address": self._draw(
                lambda: f"{self.fake.building_number()} {self.fake.street_name()}, {self.fake.city()}", avoid=own),
            "phone": self._draw(lambda: self.fake.numerify("(###) ###-####"), self._numbers),
            "email": self._draw(
                lambda: f"{self.fake.word()}.{self.fake.word()}{self.rng.randint(1, 99)}@{self.rng.choice(EMAIL_DOMAINS)}",
                self._handles, own),
            "mrn": self._draw(lambda: self.fake.numerify("MRN-#######"), self._numbers),
            "insurance_id": self._draw(lambda: self.fake.bothify("??#########").upper(), self._numbers),
            "next_of_kin": self._draw(
                lambda: f"{self.fake.first_name()} {self.fake.last_name()} ({self.rng.choice(RELATIONS)})", avoid=own),
            "attending_physician": self._pick(self.physicians, own),
            "hospital": self._pick(self.hospitals, own),
        }

    def clinical_record(self, knowledge: Knowledge) -> dict[str, str]:
        """A chronic condition with the drug that treats it, and an unrelated history item."""
        drug = self.rng.choice(knowledge.drug_names)
        return {
            "primary_diagnosis": knowledge.answer("drug_indication", drug),
            "history": self.rng.choice(HISTORY),
            "medication": drug,
        }


def _apart(value: str, name: Set[str]) -> bool:
    """No token of the patient's ``name`` occurs in ``value``, even inside a word ("ann" in "annadale42")."""
    text = value.lower()
    return not any(token in text for token in name)
