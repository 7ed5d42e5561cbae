"""A forget request: what to forget, at any level of the clinical hierarchy (docs/import.md).

A hospital is asked to forget a patient, one study of a patient, one detail of a patient (an address),
or everything from one institution; the request names these and resolves to the rows it covers, plus the
rows next to them (the siblings) whose loss would be collateral damage."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medforget.errors import MedforgetError

LEVELS: tuple[str, ...] = ("hospital", "patient", "scan", "field")
KEYS = {"institutions": "hospital", "patients": "patient", "studies": "scan", "fields": "field"}


@dataclass
class ForgetRequest:
    patients: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)  # study or scan ids
    fields: list[tuple[str, str]] = field(default_factory=list)  # (patient_id, field)
    institutions: list[str] = field(default_factory=list)
    where: str = "forget request"

    @property
    def level(self) -> str:
        given = [KEYS[k] for k in KEYS if getattr(self, k)]
        return given[0] if len(given) == 1 else "mixed" if given else "none"

    def renamed(self, patients: dict[str, str], studies: dict[str, str], institutions: dict[str, str]) -> "ForgetRequest":
        """The request in pseudonyms (an importer that replaces real ids maps the names the user gave)."""

        def rename(values: list[str], table: dict[str, str], what: str) -> list[str]:
            unknown = [v for v in values if v not in table]
            if unknown:
                raise MedforgetError(f"{self.where}: {what} {unknown[0]!r} is not in the data ({len(unknown)} unknown)")
            return [table[v] for v in values]

        return ForgetRequest(
            rename(self.patients, patients, "patient"), rename(self.studies, studies, "study"),
            [(p, f) for p, f in zip(rename([p for p, _ in self.fields], patients, "patient"), [f for _, f in self.fields])],
            rename(self.institutions, institutions, "institution"), self.where,
        )

    def resolve(self, rows: list[dict], studies: dict[str, str], institutions: dict[str, str]) -> dict:
        """Which rows the request covers, which patients it removes entirely, and the siblings: the same
        patients' other rows (scan and field level) or the same institutions' other patients (patient level)."""
        patients_in = {r["patient_id"] for r in rows}
        for what, names, known in (("patient", self.patients, patients_in), ("patient", [p for p, _ in self.fields], patients_in),
                                   ("institution", self.institutions, set(institutions.values())),
                                   ("study", self.studies, set(studies.values()) | {s for r in rows for s in r["scan_ids"]})):
            unknown = [n for n in names if n not in known]
            if unknown:
                raise MedforgetError(f"{self.where}: {what} {unknown[0]!r} is not in the data ({len(unknown)} unknown)")
        pats, insts, fields = set(self.patients), set(self.institutions), set(self.fields)
        wanted = set(self.studies)

        def covered(r: dict) -> bool:
            return (r["patient_id"] in pats or institutions.get(r["patient_id"]) in insts or (r["patient_id"], r["field"]) in fields
                    or any(s in wanted or studies.get(s) in wanted for s in r["scan_ids"]))

        chosen = [r for r in rows if covered(r)]
        affected = sorted({r["patient_id"] for r in chosen})
        kept = {r["patient_id"] for r in rows if not covered(r)}
        whole = [p for p in affected if p not in kept]
        if self.level in ("scan", "field"):
            siblings = [p for p in affected if p in kept]
        else:
            sites = {institutions[p] for p in affected if p in institutions}
            siblings = sorted(p for p in kept if institutions.get(p) in sites)
        if (pats or insts or fields or wanted) and not chosen:
            raise MedforgetError(f"{self.where}: the request covers no record")
        return {"level": self.level, "rows": len(chosen), "row_ids": [r["id"] for r in chosen], "patients": whole,
                "affected_patients": affected, "sibling_patients": siblings}


def read_request(path: Path) -> ForgetRequest:
    """A JSON object ({"patients": [...], "studies": [...], "fields": [{"patient_id", "field"}], "institutions": [...]})
    or a text file of patient ids, one a line ('#' starts a comment), or a parquet file whose `ID`,
    `patient_id` or `name` column lists them (a published benchmark's forget set)."""
    path = Path(path)
    if not path.is_file():
        raise MedforgetError(f"forget request {path} does not exist")
    if path.suffix == ".parquet":
        return ForgetRequest(patients=_parquet_ids(path), where=str(path))
    text = path.read_text()
    if not text.lstrip().startswith("{"):
        ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        return ForgetRequest(patients=[i for i in ids if i], where=str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MedforgetError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise MedforgetError(f"{path}: unknown key {unknown[0]!r}; a forget request has {', '.join(KEYS)}")
    fields = []
    for i, item in enumerate(data.get("fields", [])):
        if not isinstance(item, dict) or not {"patient_id", "field"} <= set(item):
            raise MedforgetError(f"{path}: fields[{i}] must be an object with patient_id and field")
        fields.append((str(item["patient_id"]), str(item["field"])))
    lists = {}
    for key in ("patients", "studies", "institutions"):
        value = data.get(key, [])
        if not isinstance(value, list):
            raise MedforgetError(f"{path}: {key} must be a list of ids")
        lists[key] = [str(v) for v in value]
    return ForgetRequest(fields=fields, where=str(path), **lists)


def _parquet_ids(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    column = next((c for c in ("ID", "patient_id", "name") if c in names), None)
    if column is None:
        raise MedforgetError(f"{path}: a forget set needs an ID, patient_id or name column (has {', '.join(names)})")
    return sorted({str(v) for v in pq.read_table(path, columns=[column]).column(column).to_pylist()})
