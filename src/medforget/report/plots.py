"""The report's figures as base64 PNG strings, ready for `<img src="data:image/png;base64,...">`.

Figures are built with `matplotlib.figure.Figure` and rendered by the Agg canvas directly, never through
pyplot: no display is needed, no global backend is switched, and nothing leaks between calls. Each
function returns None when the run has nothing to draw, so the page can say so instead.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from medforget.evaluate.metrics.mia import auroc

#: Split order on the bar chart: what should drop, then what should stay, then the unseen patients.
SPLIT_ORDER: tuple[str, ...] = (
    "forget_privacy", "forget_incorrect", "test_forget", "retain", "test_retain", "general", "holdout",
)
#: Marker and colour per model kind: vanilla and oracle must stand out from the methods.
STYLE: dict[str, dict] = {
    "base": {"marker": "s", "color": "#8c8c8c"},
    "vanilla": {"marker": "*", "color": "#d62728"},
    "oracle": {"marker": "D", "color": "#2ca02c"},
    "reference": {"marker": "X", "color": "#555555"},
}
METHOD_COLORS = ("#1f77b4", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_png(image: Image.Image) -> str:
    """A PIL image (a scan) as base64 PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def model_styles(models: list[tuple[str, str]]) -> dict[str, dict]:
    """(name, kind) pairs -> marker and colour; methods cycle through distinct colours in order."""
    styles, k = {}, 0
    for name, kind in models:
        if kind in STYLE:
            styles[name] = STYLE[kind]
        else:
            styles[name] = {"marker": "o", "color": METHOD_COLORS[k % len(METHOD_COLORS)]}
            k += 1
    return styles


Interval = tuple[float | None, float | None]


def _err(value: float, ci: Interval) -> list[list[float]] | None:
    """Matplotlib's asymmetric error bar for one point, None without an interval."""
    low, high = ci
    return None if low is None or high is None else [[max(value - low, 0)], [max(high - value, 0)]]


def tradeoff_plot(points: list[tuple]) -> str | None:
    """Scatter of (name, kind, forget accuracy, retain accuracy[, forget interval, retain interval]) with 95 %
    intervals as error bars: the ideal sits at the oracle, left and high."""
    if not points:
        return None
    styles = model_styles([(p[0], p[1]) for p in points])
    fig = Figure(figsize=(7, 4.6))
    ax = fig.add_subplot()
    labels: dict[tuple[float, float], list[str]] = {}
    for name, kind, x, y, *cis in points:
        style = styles[name]
        size = 260 if kind == "vanilla" else 110
        if cis:
            ax.errorbar([x], [y], xerr=_err(x, cis[0]), yerr=_err(y, cis[1]), fmt="none", ecolor=style["color"],
                        elinewidth=1, capsize=3, zorder=2)
        ax.scatter([x], [y], s=size, marker=style["marker"], color=style["color"], edgecolor="black",
                   linewidth=0.6, zorder=3, label=f"{name} ({kind})" if kind != name else name)
        labels.setdefault((round(x, 3), round(y, 3)), []).append(name)
    for (x, y), names in labels.items():  # models on the same spot share one label instead of overprinting
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(8, 7), fontsize=9)
    ax.set_xlabel("forget_privacy MCQ accuracy (lower = forgot more)")
    ax.set_ylabel("retain MCQ accuracy (higher = kept more)")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Forgetting versus keeping")
    fig.tight_layout()
    return _png(fig)


def split_bars(
    accuracy: dict[str, dict[str, float]], kinds: dict[str, str],
    errors: dict[str, dict[str, tuple[float, float]]] | None = None,
) -> str | None:
    """Grouped bars: MCQ accuracy per split (groups) per model (bars); `accuracy` maps model -> split -> acc,
    `errors` model -> split -> 95 % interval (error bars)."""
    splits = [s for s in SPLIT_ORDER if any(s in a for a in accuracy.values())]
    models = [m for m in accuracy if accuracy[m]]
    if not splits or not models:
        return None
    styles = model_styles([(m, kinds.get(m, "method")) for m in models])
    fig = Figure(figsize=(10, 4.4))
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    x = np.arange(len(splits))
    for i, model in enumerate(models):
        values = [accuracy[model].get(s, np.nan) for s in splits]
        cis = [(errors or {}).get(model, {}).get(s) for s in splits]
        yerr = np.array([[max(v - c[0], 0), max(c[1] - v, 0)] if c and np.isfinite(v) else [0, 0]
                         for v, c in zip(values, cis)]).T
        ax.bar(x + (i - (len(models) - 1) / 2) * width, values, width, label=model, color=styles[model]["color"],
               edgecolor="black", linewidth=0.4, yerr=yerr, error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.set_xticks(x, [s.replace("_", "\n", 1) for s in splits], fontsize=9)
    ax.set_ylabel("MCQ accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(len(models), 6), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title("MCQ accuracy per split")
    fig.tight_layout()
    return _png(fig)


def _roc(members: list[float], nonmembers: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """ROC points for the rule "member if score >= t", every distinct score as a threshold."""
    m, n = np.sort(members), np.sort(nonmembers)
    thresholds = np.concatenate([[np.inf], np.unique(np.concatenate([m, n]))[::-1]])
    tpr = 1 - np.searchsorted(m, thresholds, side="left") / m.size
    fpr = 1 - np.searchsorted(n, thresholds, side="left") / n.size
    return fpr, tpr


def roc_plot(scores: dict[str, tuple[list[float], list[float]]], kinds: dict[str, str]) -> str | None:
    """ROC curves of one attack per model; `scores` maps model -> (member scores, non-member scores)."""
    usable = {m: s for m, s in scores.items() if s[0] and s[1]}
    if not usable:
        return None
    styles = model_styles([(m, kinds.get(m, "method")) for m in usable])
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="chance (AUROC 0.5)")
    for model, (members, nonmembers) in usable.items():
        fpr, tpr = _roc(members, nonmembers)
        ax.plot(fpr, tpr, color=styles[model]["color"], linewidth=2 if kinds.get(model) in STYLE else 1.5,
                label=f"{model}: AUROC {auroc(members, nonmembers):.3f}")
    ax.set_xlabel("false-positive rate (holdout patients flagged)")
    ax.set_ylabel("true-positive rate (forgotten patients flagged)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Min-K%++ membership attack")
    fig.tight_layout()
    return _png(fig)
