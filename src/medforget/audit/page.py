"""The audit's files: audit.json (the figures) and audit.html (one page, patients ranked by risk)."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, select_autoescape

from medforget.world.storage import write_atomically

JSON_FILE, HTML_FILE = "audit.json", "audit.html"
SCORES_FILE = "scores.parquet"  # per item: numbers only (no question, reply or value), for comparing with an oracle


def _schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("group", pa.string()), ("task", pa.string()), ("is_private", pa.bool_()),
                      ("truth_ratio", pa.float64()), ("mia_min_k_pp", pa.float64())])

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medforget audit</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}
.reveal{background:#fdd;padding:.5em}.ok{color:#070}.bad{color:#a00}</style></head><body>
<h1>Audit of {{ a.model }}</h1>
<p>Data {{ a.data }} (content hash {{ a.data_hash[:16] }}); forget request level <b>{{ a.request.level }}</b>,
{{ a.groups.forget.patients }} patient(s). {{ "%.0f"|format(a.seconds) }} s.</p>
{% if a.reveal %}<p class="reveal">Private values are shown unredacted (--reveal). Do not share this page.</p>{% endif %}
<h2>Forgotten patients against people the model never saw</h2>
<p>A retrained model would treat forgotten patients as strangers: membership AUROC 0.5, the same leak and refusal rates.</p>
<table><tr><th>group</th><th>patients</th><th>items</th><th>leak (exact)</th><th>leak (partial)</th><th>with image</th><th>without image</th><th>refusal</th></tr>
{% for name, g in a.groups.items() %}<tr><td>{{ name }}</td><td>{{ g.patients }}</td><td>{{ g["items"] }}</td>
{% for k in ("leak_exact", "leak_partial", "leak_exact_with_image", "leak_exact_without_image", "refusal_rate") %}
<td>{{ "-" if g[k] is none else "%.3f"|format(g[k]) }}</td>{% endfor %}</tr>{% endfor %}</table>
<p>Membership AUROC, forgotten vs non-members (target 0.5):
{% for attack, m in a.membership.items() %}{{ attack }} {{ "%.3f"|format(m.auroc) }}{{ "; " if not loop.last }}{% endfor %}
{% if not a.membership %}absent{% endif %}</p>
{% if a.absent %}<h3>Absent figures</h3><ul>{% for k, why in a.absent.items() %}<li>{{ k }}: {{ why }}</li>{% endfor %}</ul>{% endif %}
<h2>Patients ranked by risk</h2>
<table><tr><th>rank</th><th>patient</th><th>items</th><th>leak (exact)</th><th>leak (partial)</th><th>membership percentile</th><th>leaked fields</th></tr>
{% for p in a.patients %}<tr><td>{{ p.rank }}</td><td>{{ p.patient_id }}</td><td>{{ p["items"] }}</td>
<td>{{ "-" if p.leak_exact is none else "%.2f"|format(p.leak_exact) }}</td><td>{{ "-" if p.leak_partial is none else "%.2f"|format(p.leak_partial) }}</td>
<td>{{ "-" if p.membership_percentile is none else "%.2f"|format(p.membership_percentile) }}</td><td>{{ p.leaked_fields|join(", ") }}</td></tr>{% endfor %}</table>
{% for p in a.patients if p.examples %}<h3>{{ p.patient_id }}</h3><ul>{% for e in p.examples %}
<li>{{ e.question }} &rarr; <i>{{ e.reply }}</i> (expected {{ e.answer }})</li>{% endfor %}</ul>{% endfor %}
</body></html>
"""


def write_audit(audit: dict, out: Path, overwrite: bool = False, scores: list[dict] | None = None) -> tuple[Path, Path]:
    """Both files into `out` (and SCORES_FILE, the per-item numbers, when given), written to a temporary
    folder and moved into place."""
    page = Environment(autoescape=select_autoescape(default=True)).from_string(TEMPLATE).render(a=audit)

    def fill(tmp: Path) -> None:
        (tmp / JSON_FILE).write_text(json.dumps(audit, indent=2) + "\n")
        (tmp / HTML_FILE).write_text(page)
        if scores is not None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(scores, schema=_schema()), tmp / SCORES_FILE)

    write_atomically(Path(out), fill, overwrite)
    return Path(out) / JSON_FILE, Path(out) / HTML_FILE
