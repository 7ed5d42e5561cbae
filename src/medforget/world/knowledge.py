"""The bank of medical facts that the incorrect-knowledge scenario draws from and corrupts."""

from __future__ import annotations

import random
from dataclasses import dataclass

MODALITIES: tuple[str, ...] = ("CT", "MRI", "X-ray", "ultrasound")
REGIONS: tuple[str, ...] = ("head", "chest", "abdomen", "pelvis")
FINDINGS: tuple[str, ...] = ("nodule", "cyst", "mass", "fracture", "none")
QUALITIES: tuple[str, ...] = ("high", "medium", "low")

# (region, finding) -> the likely diagnosis. "none" always means no abnormality.
DIAGNOSIS_RULES: dict[tuple[str, str], str] = {
    ("head", "nodule"): "meningioma",
    ("head", "cyst"): "arachnoid cyst",
    ("head", "mass"): "glioma",
    ("head", "fracture"): "skull fracture",
    ("chest", "nodule"): "pulmonary nodule",
    ("chest", "cyst"): "bronchogenic cyst",
    ("chest", "mass"): "lung carcinoma",
    ("chest", "fracture"): "rib fracture",
    ("abdomen", "nodule"): "hepatic adenoma",
    ("abdomen", "cyst"): "renal cyst",
    ("abdomen", "mass"): "hepatocellular carcinoma",
    ("abdomen", "fracture"): "vertebral compression fracture",
    ("pelvis", "nodule"): "uterine fibroid",
    ("pelvis", "cyst"): "ovarian cyst",
    ("pelvis", "mass"): "bladder carcinoma",
    ("pelvis", "fracture"): "pelvic ring fracture",
}
NO_ABNORMALITY = "no acute abnormality"

# diagnosis -> imaging modality of choice.
MODALITY_OF_CHOICE: dict[str, str] = {
    "meningioma": "MRI", "arachnoid cyst": "MRI", "glioma": "MRI", "skull fracture": "CT",
    "pulmonary nodule": "CT", "bronchogenic cyst": "CT", "lung carcinoma": "CT", "rib fracture": "X-ray",
    "hepatic adenoma": "MRI", "renal cyst": "ultrasound", "hepatocellular carcinoma": "CT",
    "vertebral compression fracture": "X-ray", "uterine fibroid": "ultrasound", "ovarian cyst": "ultrasound",
    "bladder carcinoma": "CT", "pelvic ring fracture": "CT",
}

# drug -> indication (real, textbook pairs).
DRUG_INDICATIONS: dict[str, str] = {
    "metformin": "type 2 diabetes", "lisinopril": "hypertension", "atorvastatin": "hypercholesterolemia",
    "levothyroxine": "hypothyroidism", "albuterol": "asthma", "omeprazole": "gastroesophageal reflux",
    "amoxicillin": "bacterial pneumonia", "warfarin": "atrial fibrillation", "sertraline": "depression",
    "allopurinol": "gout", "alendronate": "osteoporosis", "levodopa": "parkinson disease",
    "donepezil": "alzheimer disease", "methotrexate": "rheumatoid arthritis", "furosemide": "heart failure",
    "tamsulosin": "benign prostatic hyperplasia", "sumatriptan": "migraine", "insulin glargine": "type 1 diabetes",
    "oseltamivir": "influenza", "acyclovir": "herpes simplex", "lamotrigine": "epilepsy",
    "hydroxychloroquine": "lupus", "montelukast": "allergic rhinitis", "clopidogrel": "coronary artery disease",
    "tiotropium": "chronic obstructive pulmonary disease", "isoniazid": "tuberculosis",
    "ondansetron": "nausea", "finasteride": "male pattern baldness", "mesalamine": "ulcerative colitis",
    "propylthiouracil": "hyperthyroidism",
}

HISTORY: tuple[str, ...] = (
    "former smoker", "type 2 diabetes", "prior appendectomy", "hypertension", "asthma since childhood",
    "prior myocardial infarction", "chronic kidney disease", "no significant history", "prior cholecystectomy",
    "seasonal allergies", "migraine", "hypothyroidism",
)


@dataclass(frozen=True)
class Fact:
    """One general fact: a subject, the relation asked, and its true answer."""

    kind: str  # drug_indication | diagnosis_rule | modality_of_choice
    subject: str
    answer: str


@dataclass
class Knowledge:
    """The facts used by this world (a seeded subset of the drug table, all the rules)."""

    facts: list[Fact]

    @property
    def drug_names(self) -> list[str]:
        return [f.subject for f in self.facts if f.kind == "drug_indication"]

    def answer(self, kind: str, subject: str) -> str:
        return next(f.answer for f in self.facts if f.kind == kind and f.subject == subject)

    def answers_of(self, kind: str) -> list[str]:
        return sorted({f.answer for f in self.facts if f.kind == kind})


def diagnosis_for(region: str, finding: str) -> str:
    return NO_ABNORMALITY if finding == "none" else DIAGNOSIS_RULES[(region, finding)]


def build_knowledge(n_drugs: int, rng: random.Random) -> Knowledge:
    drugs = rng.sample(sorted(DRUG_INDICATIONS), min(n_drugs, len(DRUG_INDICATIONS)))
    facts = [Fact("drug_indication", d, DRUG_INDICATIONS[d]) for d in sorted(drugs)]
    facts += [Fact("diagnosis_rule", f"{finding} in the {region}", dx) for (region, finding), dx in DIAGNOSIS_RULES.items()]
    facts += [Fact("modality_of_choice", dx, m) for dx, m in MODALITY_OF_CHOICE.items()]
    return Knowledge(facts)
