"""report.html of `run --data`: the summary's models side by side, each figure with its legend, every absent
one shown as absent with its reason (never 0), and links to each model's audit page. Same look as the
synthetic run's report (its stylesheet), one self-contained page, autoescaped."""

from __future__ import annotations

from jinja2 import Environment, select_autoescape

from medforget.report.page import CSS

REPORT_FILE = "report.html"
LEGENDS = {
    "forget leak": "share of the forget request's private open and cloze items whose reply states the value (exact leak); "
                   "a model that never saw them does as the non-members",
    "sibling leak": "the same on the request's siblings (the same patients' other details for a scan or field request, the "
                    "institution's other patients for a patient request): what the model should keep",
    "non-member leak": "the same on people the model was never trained on: chance hits, the level to fall to",
    "forget refusal": "share of the forget request's replies that refuse without stating the value",
    "auroc": "Min-K%++ membership AUROC, forgotten vs non-members: 0.5 cannot tell them apart (the oracle-free criterion); "
             "far below 0.5 is an overshoot, itself a membership signal",
    "forget quality": "KS-test p-value between the model's and the oracle's truth ratios on the request's multiple-choice "
                      "items; near 1 looks like the oracle",
    "PrivLeak": "(AUROC - oracle's AUROC) / oracle's AUROC, Min-K%++; 0 is as private as retrained",
    "leak gap": "forget leak minus the oracle's",
    "refusal gap": "forget refusal minus the oracle's: refusing only about the forgotten tells who they are",
}

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medforget: audit before and after unlearning</title>
<style>{{ css }}</style></head><body><main>
<h1>Audit before and after unlearning</h1>
<p class="meta"><span>data <b>{{ data }}</b></span><span>model <b>{{ model }}</b></span>
<span>forget request <b>{{ request.level }}</b>, {{ request.rows }} row(s)</span>
<span>oracle <b>{{ oracle or "none" }}</b></span></p>
<p class="lead">Each model is audited on the same items: the forget request, its siblings, and people never trained on.
{% if not oracle %}Without a retrained oracle the criterion is the one it would meet: forgotten patients look like
strangers (AUROC {{ target }}), with the non-members' leak and refusal rates.{% endif %}</p>
<div class="scroll"><table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}<th>audit</th></tr>
{% for r in rows %}<tr class="kind-{{ 'vanilla' if r.model == 'vanilla' else 'method' }}">
{% for c in columns %}{% set v = r[c] %}<td>{% if c == "model" %}{{ v }}{% elif v is none %}<i>absent</i>{% else %}{{ fmt(c, v) }}{% endif %}</td>{% endfor %}
<td><a href="../audits/{{ r.model }}/audit.html">page</a></td></tr>{% endfor %}</table></div>
{% if absent %}<div class="notes"><h2>Absent figures</h2><ul>{% for k, why in absent.items() %}<li><b>{{ k }}</b>: {{ why }}</li>{% endfor %}</ul></div>{% endif %}
<h2>What each column means</h2><dl class="legend">{% for c in columns if c in legends %}<dt>{{ c }}</dt><dd>{{ legends[c] }}</dd>{% endfor %}</dl>
<footer>Written by <code>medforget run --data</code>; the figures are in summary.json beside this page.</footer>
</main></body></html>
"""


def render_report(summary: dict, columns: list[str], data: str, model: str, request: dict, oracle: str | None, fmt) -> str:
    """The page; `fmt(column, value)` formats a present figure as the Markdown summary does."""
    env = Environment(autoescape=select_autoescape(default=True))
    return env.from_string(TEMPLATE).render(
        css=CSS, rows=summary["rows"], columns=columns, absent=summary.get("absent", {}), legends=LEGENDS, fmt=fmt,
        data=data, model=model, request=request, oracle=oracle, target=summary["target_auroc"])
