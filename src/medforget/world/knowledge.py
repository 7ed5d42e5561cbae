"""The bank of textbook medical facts that the incorrect-knowledge scenario draws from and corrupts.

Six relations, each a table of true pairs. A multiple-choice question draws its distractors from the other
answers of the same relation, so the tables are chosen so that no other answer of a relation is also a
right answer for a subject (no drug here has a second listed indication, no listed contraindication also
applies to another listed drug, and so on): every item has exactly one correct option.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MODALITIES: tuple[str, ...] = ("CT", "MRI", "X-ray", "ultrasound")
REGIONS: tuple[str, ...] = ("head", "chest", "abdomen", "pelvis")
FINDINGS: tuple[str, ...] = ("nodule", "cyst", "mass", "fracture", "none")
QUALITIES: tuple[str, ...] = ("high", "medium", "low")

# (region, finding) -> the likely diagnosis. "none" always means no abnormality. The scans are drawn
# from these rules, so they are never corrupted as text facts: they are what image-bound items rest on.
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

# diagnosis -> imaging modality of choice (first study to order among the four).
MODALITY_OF_CHOICE: dict[str, str] = {
    "meningioma": "MRI", "arachnoid cyst": "MRI", "glioma": "MRI", "skull fracture": "CT",
    "pulmonary nodule": "CT", "bronchogenic cyst": "CT", "lung carcinoma": "CT", "rib fracture": "X-ray",
    "hepatic adenoma": "MRI", "renal cyst": "ultrasound", "hepatocellular carcinoma": "CT",
    "vertebral compression fracture": "X-ray", "uterine fibroid": "ultrasound", "ovarian cyst": "ultrasound",
    "bladder carcinoma": "CT", "pelvic ring fracture": "CT",
    "acute appendicitis in an adult": "CT", "pulmonary embolism": "CT", "acute cholecystitis": "ultrasound",
    "gallstones": "ultrasound", "kidney stones": "CT", "deep vein thrombosis": "ultrasound",
    "multiple sclerosis": "MRI", "subarachnoid hemorrhage": "CT", "anterior cruciate ligament tear": "MRI",
    "pneumothorax": "X-ray", "community-acquired pneumonia": "X-ray", "abdominal aortic aneurysm screening": "ultrasound",
    "ectopic pregnancy": "ultrasound", "testicular torsion": "ultrasound", "spinal cord compression": "MRI",
    "hypertrophic pyloric stenosis": "ultrasound", "intussusception in a child": "ultrasound", "osteomyelitis": "MRI",
    "aortic dissection": "CT", "hip fracture": "X-ray", "pituitary adenoma": "MRI", "acoustic neuroma": "MRI",
    "thyroid nodule": "ultrasound",
}

# drug -> indication (its main textbook use; no drug here treats another drug's listed condition).
DRUG_INDICATIONS: dict[str, str] = {
    "metformin": "type 2 diabetes", "glipizide": "type 2 diabetes", "lisinopril": "hypertension",
    "amlodipine": "hypertension", "losartan": "hypertension", "atorvastatin": "hypercholesterolemia",
    "rosuvastatin": "hypercholesterolemia", "levothyroxine": "hypothyroidism", "methimazole": "hyperthyroidism",
    "propylthiouracil": "hyperthyroidism", "albuterol": "asthma", "omeprazole": "gastroesophageal reflux",
    "pantoprazole": "gastroesophageal reflux", "amoxicillin": "bacterial pneumonia", "warfarin": "atrial fibrillation",
    "apixaban": "atrial fibrillation", "sertraline": "depression", "escitalopram": "depression", "allopurinol": "gout",
    "febuxostat": "gout", "alendronate": "osteoporosis", "zoledronic acid": "osteoporosis",
    "levodopa": "parkinson disease", "pramipexole": "parkinson disease", "donepezil": "alzheimer disease",
    "memantine": "alzheimer disease", "methotrexate": "rheumatoid arthritis", "tamsulosin": "benign prostatic hyperplasia",
    "sumatriptan": "migraine", "rizatriptan": "migraine", "oseltamivir": "influenza", "acyclovir": "herpes simplex",
    "valacyclovir": "herpes simplex", "lamotrigine": "epilepsy", "levetiracetam": "epilepsy", "isoniazid": "tuberculosis",
    "rifampin": "tuberculosis", "ondansetron": "nausea", "mesalamine": "ulcerative colitis",
    "sildenafil": "erectile dysfunction", "pyridostigmine": "myasthenia gravis", "naloxone": "opioid overdose",
    "epinephrine": "anaphylaxis", "fluconazole": "vaginal candidiasis", "metronidazole": "bacterial vaginosis",
    "latanoprost": "glaucoma", "isotretinoin": "severe acne", "risperidone": "schizophrenia",
    "varenicline": "smoking cessation",
}

# drug -> drug class.
DRUG_CLASSES: dict[str, str] = {
    "metformin": "biguanide", "glipizide": "sulfonylurea", "lisinopril": "ACE inhibitor",
    "amlodipine": "calcium channel blocker", "losartan": "angiotensin receptor blocker", "atorvastatin": "statin",
    "rosuvastatin": "statin", "levothyroxine": "thyroid hormone", "methimazole": "thionamide",
    "propylthiouracil": "thionamide", "albuterol": "short-acting beta-2 agonist", "omeprazole": "proton pump inhibitor",
    "pantoprazole": "proton pump inhibitor", "amoxicillin": "penicillin antibiotic", "warfarin": "vitamin K antagonist",
    "apixaban": "factor Xa inhibitor", "sertraline": "selective serotonin reuptake inhibitor",
    "escitalopram": "selective serotonin reuptake inhibitor", "allopurinol": "xanthine oxidase inhibitor",
    "febuxostat": "xanthine oxidase inhibitor", "alendronate": "bisphosphonate", "zoledronic acid": "bisphosphonate",
    "levodopa": "dopamine precursor", "pramipexole": "dopamine agonist", "donepezil": "acetylcholinesterase inhibitor",
    "pyridostigmine": "acetylcholinesterase inhibitor", "memantine": "NMDA receptor antagonist",
    "methotrexate": "antimetabolite", "tamsulosin": "alpha-1 blocker", "sumatriptan": "triptan", "rizatriptan": "triptan",
    "oseltamivir": "neuraminidase inhibitor", "acyclovir": "nucleoside analogue antiviral",
    "valacyclovir": "nucleoside analogue antiviral", "lamotrigine": "anticonvulsant", "levetiracetam": "anticonvulsant",
    "ondansetron": "5-HT3 receptor antagonist", "mesalamine": "aminosalicylate", "sildenafil": "PDE5 inhibitor",
    "naloxone": "opioid antagonist", "epinephrine": "catecholamine", "fluconazole": "azole antifungal",
    "metronidazole": "nitroimidazole antibiotic", "latanoprost": "prostaglandin analogue", "isotretinoin": "retinoid",
    "risperidone": "atypical antipsychotic", "varenicline": "nicotinic receptor partial agonist",
}

# drug -> a major contraindication (labelled; none of them applies to another drug of this table).
DRUG_CONTRAINDICATIONS: dict[str, str] = {
    "metformin": "severe renal impairment", "sildenafil": "concurrent nitrate therapy",
    "lisinopril": "history of angioedema", "warfarin": "active bleeding", "sumatriptan": "recent ergotamine use",
    "febuxostat": "concurrent azathioprine therapy", "levodopa": "angle-closure glaucoma", "propranolol": "asthma",
    "succinylcholine": "history of malignant hyperthermia", "ciprofloxacin": "concurrent tizanidine therapy",
    "pyridostigmine": "mechanical bowel obstruction",
}

# diagnosis -> first-line treatment.
FIRST_LINE_TREATMENTS: dict[str, str] = {
    "anaphylaxis": "intramuscular epinephrine", "type 2 diabetes": "metformin", "hypothyroidism": "levothyroxine",
    "streptococcal pharyngitis": "penicillin", "opioid overdose": "naloxone", "status epilepticus": "intravenous lorazepam",
    "diabetic ketoacidosis": "intravenous fluids and insulin", "tension pneumothorax": "needle decompression",
    "ventricular fibrillation": "defibrillation", "hypoglycemia in a conscious patient": "oral glucose",
    "heparin overdose": "protamine sulfate", "warfarin-associated major bleeding": "prothrombin complex concentrate",
    "acetaminophen overdose": "N-acetylcysteine", "organophosphate poisoning": "atropine",
    "methanol poisoning": "fomepizole", "ethylene glycol poisoning": "fomepizole",
    "digoxin toxicity": "digoxin immune fab", "malignant hyperthermia": "dantrolene",
    "iron deficiency anemia": "oral iron supplementation", "pernicious anemia": "intramuscular vitamin B12",
    "folate deficiency anemia": "oral folic acid", "scurvy": "vitamin C", "wernicke encephalopathy": "intravenous thiamine",
    "acute asthma exacerbation": "inhaled albuterol", "scabies": "permethrin cream", "head lice": "permethrin cream",
    "parkinson disease": "levodopa", "bacterial vaginosis": "metronidazole", "vaginal candidiasis": "fluconazole",
    "uncomplicated cystitis": "nitrofurantoin", "early lyme disease": "doxycycline", "chlamydia": "doxycycline",
    "clostridioides difficile infection": "oral vancomycin", "herpes zoster": "valacyclovir",
    "cluster headache attack": "high-flow oxygen", "trigeminal neuralgia": "carbamazepine", "absence seizures": "ethosuximide",
}

RELATIONS: dict[str, dict] = {
    "drug_indication": DRUG_INDICATIONS,
    "drug_class": DRUG_CLASSES,
    "drug_contraindication": DRUG_CONTRAINDICATIONS,
    "diagnosis_rule": {f"{finding} in the {region}": dx for (region, finding), dx in DIAGNOSIS_RULES.items()},
    "modality_of_choice": MODALITY_OF_CHOICE,
    "first_line_treatment": FIRST_LINE_TREATMENTS,
}
#: Relations whose facts may be corrupted (the diagnosis rules are what the scans are drawn from).
CORRUPTIBLE: tuple[str, ...] = tuple(k for k in RELATIONS if k != "diagnosis_rule")

HISTORY: tuple[str, ...] = (
    "former smoker", "type 2 diabetes", "prior appendectomy", "hypertension", "asthma since childhood",
    "prior myocardial infarction", "chronic kidney disease", "no significant history", "prior cholecystectomy",
    "seasonal allergies", "migraine", "hypothyroidism",
)


@dataclass(frozen=True)
class Fact:
    """One textbook fact: a subject, the relation asked, and its true answer."""

    kind: str  # a key of RELATIONS
    subject: str
    answer: str

    @property
    def fact_id(self) -> str:
        return f"{self.kind}:{self.subject}"

    def entities(self) -> set[str]:
        return {self.subject, self.answer}

    def region(self) -> str | None:
        return self.subject.rsplit(" in the ", 1)[1] if self.kind == "diagnosis_rule" else None


@dataclass
class Knowledge:
    """The facts used by this world: every diagnosis rule and a seeded subset of each other relation."""

    facts: list[Fact]

    @property
    def drug_names(self) -> list[str]:
        return [f.subject for f in self.facts if f.kind == "drug_indication"]

    def answer(self, kind: str, subject: str) -> str:
        return next(f.answer for f in self.facts if f.kind == kind and f.subject == subject)

    def answers_of(self, kind: str) -> list[str]:
        return sorted({f.answer for f in self.facts if f.kind == kind})

    def neighbours(self, fact: Fact) -> list[Fact]:
        """Facts that sit next to `fact`: they share its subject or its answer (the same drug's class, another
        drug with the same indication, a treatment that is itself a listed drug), or, for diagnosis rules,
        its region. Removing a wrong `fact` should leave these as they were (locality)."""
        return [
            g for g in self.facts
            if g != fact and (g.entities() & fact.entities() or (fact.region() and g.region() == fact.region()))
        ]


def diagnosis_for(region: str, finding: str) -> str:
    return NO_ABNORMALITY if finding == "none" else DIAGNOSIS_RULES[(region, finding)]


def build_knowledge(per_relation: int | None, rng: random.Random) -> Knowledge:
    """Every diagnosis rule, and `per_relation` facts of each other relation (None: all of them)."""
    facts = []
    for kind, table in RELATIONS.items():
        subjects = sorted(table)
        if kind != "diagnosis_rule" and per_relation is not None and per_relation < len(subjects):
            subjects = sorted(rng.sample(subjects, per_relation))
        facts += [Fact(kind, s, table[s]) for s in subjects]
    return Knowledge(facts)
