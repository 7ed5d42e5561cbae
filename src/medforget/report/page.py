"""report.html: one self-contained page (inline CSS, inline PNGs, no script, no network).

The template lives here as a string rather than as a package data file so the page renders from any
install of the package, wheel included. Autoescaping is on: model replies are arbitrary text and must
never become markup.
"""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from medforget.report.leaderboard import cell, format_value

CSS = """
:root { --ink: #1d2433; --muted: #5b6475; --line: #d9dee7; --band: #f4f6fa; --accent: #2454a6; }
* { box-sizing: border-box; }
body { font: 15px/1.5 "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans", "DejaVu Sans", sans-serif; color: var(--ink);
       margin: 0; background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 28px; margin: 0 0 6px; }
h2 { font-size: 21px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 0 0 6px; }
p.lead, p.explain { color: var(--muted); max-width: 62em; margin: 4px 0 12px; }
.meta span { display: inline-block; margin-right: 16px; color: var(--muted); }
.meta b { color: var(--ink); font-weight: 600; }
.banner { padding: 8px 12px; border-radius: 6px; margin: 12px 0; }
.banner.safe { background: #eaf5ec; border: 1px solid #b9dcc0; }
.banner.reveal { background: #fdecea; border: 1px solid #f2b8b5; font-weight: 600; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
.notes { background: #fff8e6; border: 1px solid #f0d48a; border-radius: 6px; padding: 4px 16px; margin: 16px 0; }
.notes h2 { border: 0; margin: 8px 0 0; font-size: 17px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
th:first-child, td:first-child, td.text { text-align: left; }
td { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.reply, td.small { white-space: normal; }
td.small { font-size: 12.5px; color: var(--muted); min-width: 22em; }
tr.kind-vanilla td:first-child { border-left: 4px solid #d62728; }
tr.kind-oracle td:first-child { border-left: 4px solid #2ca02c; }
tr.kind-base td:first-child { border-left: 4px solid #8c8c8c; }
tr.kind-reference td { color: #666; font-style: italic; background: #f6f6f6; }
tr.missing td { color: #9aa1ad; font-style: italic; }
.scroll { overflow-x: auto; }
dl.legend { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13.5px; color: var(--muted); }
dl.legend dt { font-weight: 600; color: var(--ink); }
dl.legend dd { margin: 0; }
img.plot { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; }
p.missing { color: #9a6a00; font-style: italic; }
article.example { display: grid; grid-template-columns: auto 1fr; gap: 18px; padding: 14px 0; border-bottom: 1px solid var(--line); }
.scans { display: flex; gap: 6px; align-items: flex-start; }
img.scan { width: 144px; height: 144px; image-rendering: pixelated; border-radius: 4px; background: #000; }
.noscan { width: 144px; color: var(--muted); font-size: 13px; }
.tag { display: inline-block; font-size: 12px; padding: 1px 7px; border-radius: 10px; background: var(--band); margin-left: 4px; }
.tag.leak { background: #fdecea; color: #a01d18; } .tag.refusal { background: #e8effb; color: #1d4a9a; }
table.answers { min-width: 460px; }
table.answers td { text-align: left; }
table.answers td.reply { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; word-break: break-word; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"""

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medforget report: {{ title }}</title>
<style>{{ css }}</style>
</head>
<body><main>
{%- macro figure(data, alt, missing) -%}
{% if data %}<img class="plot" src="data:image/png;base64,{{ data }}" alt="{{ alt }}">
{% else %}<p class="missing">{{ missing }}</p>{% endif %}
{%- endmacro %}
<header>
<h1>Unlearning report: {{ title }}</h1>
<p class="meta">{% for key, value in meta %}<span><b>{{ key }}</b> {{ value }}</span>{% endfor %}</p>
{% if reveal %}<p class="banner reveal">Private values are shown unredacted (reveal). Do not share this page.</p>
{% else %}<p class="banner safe">Private details of forgotten patients are replaced by [REDACTED:field]
in every quoted text.</p>{% endif %}
<nav><a href="#leaderboard-section">Leaderboards</a><a href="#tradeoff">Trade-off</a><a href="#splits">Splits</a>
<a href="#membership">Membership</a><a href="#oracle">Versus the oracle</a><a href="#examples">Examples</a></nav>
</header>
{% if notes %}<section class="notes"><h2>Missing or incomplete</h2><ul>
{% for note in notes %}<li>{{ note }}</li>{% endfor %}</ul></section>{% endif %}

<section id="leaderboard-section">
<h2>Leaderboards</h2>
<p class="explain">The <b>vanilla</b> model was fine-tuned on everything, private records and corrupted knowledge
included: it is the starting point. Each scenario has its own <b>oracle</b>, retrained without that scenario's forget
set: it is what perfect unlearning looks like, and every method of the scenario is judged against it. An unlearning
method succeeds when its forget-side numbers match the oracle's (not when they drop as low as possible) while its
retain-side numbers stay at the vanilla model's.</p>
{% for b in boards %}
<h3 id="board-{{ b.scenario }}">{{ b.title }}</h3>
<div class="scroll"><table class="leaderboard" id="leaderboard-{{ b.scenario }}">
<thead><tr>{% for c in b.columns %}<th title="{{ c.legend }}">{{ c.header }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in b.rows %}<tr class="kind-{{ r.kind }}{% if not r.evaluated %} missing{% endif %}">
{% for c in b.columns %}<td{% if c.kind == "text" %} class="text"{% endif %}>{{ cell(r, c) }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
<dl class="legend">{% for c in b.columns %}<dt>{{ c.header }}</dt><dd>{{ c.legend }}</dd>{% endfor %}</dl>
{% endfor %}
</section>

<section id="tradeoff">
<h2>Forgetting versus keeping</h2>
<p class="explain">Each model's accuracy on the forgotten patients (x) against its accuracy on the kept ones (y).
The vanilla model (red star) sits on the right; the oracle (green diamond) marks the goal. Good methods land near
the oracle; a method far to the left of the oracle over-forgot, one low on the y axis damaged the model.</p>
{{ figure(plots.tradeoff, "forget versus retain accuracy per model", "No model has both forget_privacy and retain accuracy.") }}
</section>

<section id="splits">
<h2>Accuracy per split</h2>
<p class="explain">MCQ accuracy on every evaluated split. forget_* and test_forget should fall to the oracle's level;
retain, test_retain and general should stay at the vanilla model's; holdout patients were never trained on, so
accuracy there is what guessing from the question alone gives.</p>
{{ figure(plots.splits, "MCQ accuracy per split and model", "No MCQ accuracy to plot.") }}
</section>

{% if plots.protection %}<section id="protection">
<h2>Image protection frontier</h2>
<p class="explain">From <code>benchmarks/protect_frontier.py</code> (docs/protect.md): the leak on clean scans of a model
fine-tuned on protected scans, divided by the leak without protection, against the protection's PSNR, per budget,
method and protector (white-box: optimised on the attacker's tower; transfer: on surrogate towers). Hollow, dashed:
the worst post-processing. Below the lower dotted line (0.5) the protection holds.</p>
{{ figure(plots.protection, "protection frontier: leak ratio against PSNR", "") }}
</section>
{% endif %}
<section id="membership">
<h2>Membership inference</h2>
<p class="explain">Can an attacker tell the forgotten patients' answers (members) from never-seen patients'
(holdout) by the model's token probabilities? Min-K%++ ROC curves per model: the diagonal is chance. The oracle's
curve is the target; PrivLeak is the relative AUROC gap to it (0 ideal, positive: membership still leaks,
negative: unlearning over-shot and made the forgotten patients stand out the other way).</p>
{{ figure(plots.roc, "ROC curves of the Min-K%++ attack", "No model has membership scores on both forget_privacy and holdout.") }}
{% if attacks %}<div class="scroll"><table id="privleak"><thead><tr><th>model</th>
{% for a in attacks %}<th>AUROC {{ a }}</th>{% endfor %}{% for a in attacks %}<th>PrivLeak {{ a }}</th>{% endfor %}</tr></thead>
<tbody>{% for d in privacy_details %}<tr class="kind-{{ d.kind }}"><td>{{ d.label }}</td>
{% for a in attacks %}<td>{{ d.auroc.get(a) | fmt("acc") }}</td>{% endfor %}
{% for a in attacks %}<td>{{ d.cmp.privleak.get(a) | fmt("gap") }}</td>{% endfor %}</tr>{% endfor %}</tbody></table></div>{% endif %}
</section>

<section id="oracle">
<h2>Versus the oracle</h2>
<h3>Forget quality and UES</h3>
<p class="explain">Forget quality is the p-value of a Kolmogorov-Smirnov test between the model's and the oracle's
truth ratios (how much the model prefers the trained answer over the distractors) on the forget set: near 1,
the two cannot be told apart. UES combines forgetting F (per forget signal, MCQ and generated answers,
1 - |model - oracle| / |vanilla - oracle|, clipped, times the behaviour factor b: 1 minus how much more the model
refuses or answers malformed than the oracle on the forget items) and utility U (per retained signal, what the model
kept of what fine-tuning added above the base model: (model - base) / (vanilla - base), clipped) by their harmonic
mean. A signal where vanilla is not clearly apart from the oracle (forget) or above the base (utility), given its
number of items, is left out for every model. The reference rows show what degenerate models score.</p>
{% for b in boards %}
<h3>{{ b.title }}</h3>
<div class="scroll"><table class="ues" id="ues-{{ b.scenario }}"><thead><tr><th>model</th>
{% for split in b.fq %}<th>forget quality {{ split }}</th>{% endfor %}
{% for s in b.ues %}<th>b {{ s }}</th><th>F {{ s }}</th><th>U {{ s }}</th><th>UES {{ s }} (95 % interval)</th>{% endfor %}<th>skipped splits</th></tr></thead>
<tbody>{% for d in b.details %}<tr class="kind-{{ d.kind }}"><td>{{ d.label }}</td>
{% for split in b.fq %}<td>{{ d.cmp.forget_quality.get(split) | fmt("pvalue") }}</td>{% endfor %}
{% for s in b.ues %}{% set u = d.cmp.ues[s] %}<td>{{ u.behaviour | fmt("acc") }}</td><td>{{ u.forgetting | fmt("acc") }}</td>
<td>{{ u.utility | fmt("acc") }}</td><td>{{ u.ues | fmt("acc") }}{% if u.ci and u.ci.ues %} ({{ u.ci.ues[0] | fmt("acc") }}–{{ u.ci.ues[1] | fmt("acc") }}){% endif %}</td>{% endfor %}
<td class="text small">{% for s in b.ues %}{% for split, reason in d.cmp.ues[s].skipped %}
{{ s }}/{{ split }}: {{ reason }}<br>{% endfor %}{% endfor %}</td>
</tr>{% endfor %}</tbody></table></div>
{% endfor %}
{% if privacy_details %}
<h3>Refusals</h3>
<p class="explain">How often generated answers refuse. Refusing about the forgotten patients while answering
about everyone else (a large forget minus holdout) reveals who was forgotten; the oracle never saw them, so it
treats them like any stranger.</p>
<div class="scroll"><table id="refusal"><thead><tr><th>model</th>
{% for s in refusal_splits %}<th>{{ s }}</th><th>{{ s }} - oracle</th>{% endfor %}<th>forget - holdout</th></tr></thead>
<tbody>{% for d in privacy_details %}<tr class="kind-{{ d.kind }}"><td>{{ d.label }}</td>
{% for s in refusal_splits %}<td>{{ d.cmp.refusal.rates.get(s) | fmt("acc") }}</td>
<td>{{ d.cmp.refusal.oracle_gap.get(s) | fmt("gap") }}</td>{% endfor %}
<td>{{ d.cmp.refusal.get("forget_vs_holdout") | fmt("gap") }}</td></tr>{% endfor %}</tbody></table></div>
{% endif %}
</section>

<section id="examples">
<h2>Before and after: questions about forgotten patients</h2>
<p class="explain">Generated answers of the vanilla model (before), of each unlearning method (after) and of the
oracle (never trained on these patients), on a fixed choice of forget_privacy questions. Tags flag replies that
state the private value (leak, exact or partial, judged on the unredacted reply) or refuse.</p>
{% for ex in examples %}<article class="example">
<div class="scans">{% for s in ex.scans %}
<img class="scan" src="data:image/png;base64,{{ s }}" alt="scan {{ loop.index }} of the question">
{% else %}<div class="noscan">asked by name, no scan</div>{% endfor %}</div>
<div><h3>{{ ex.question }}</h3>
<p class="explain">field <b>{{ ex.field }}</b>, asked by {{ ex.condition }}; trained answer: <b>{{ ex.reference }}</b>;
item <code>{{ ex.id }}</code></p>
<table class="answers"><thead><tr><th>model</th><th>answer</th><th></th></tr></thead><tbody>
{% for a in ex.answers %}<tr class="kind-{{ a.kind }}"><td>{{ a.model }}</td><td class="reply">{{ a.text or "(empty)" }}</td>
<td>{% if a.leak %}<span class="tag leak">leak ({{ a.leak }})</span>{% endif %}
{% if a.refused %}<span class="tag refusal">refusal</span>{% endif %}</td></tr>
{% endfor %}</tbody></table></div>
</article>
{% else %}<p class="missing">{{ examples_missing }}</p>{% endfor %}
</section>
<footer>Generated by medforget from {{ folder }}. Metric definitions: docs/metrics.md; this page: docs/report.md.</footer>
</main></body>
</html>
"""


def render(**context: object) -> str:
    """The page from its context (see `build.build_report` for the keys)."""
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = format_value
    env.globals["cell"] = cell
    return env.from_string(TEMPLATE).render(css=Markup(CSS), **context)  # our own constant: escaping would break its quotes
