"""build_report on a real (tiny) run folder: files, page structure, redaction, and a headless-Chromium render."""

import base64
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medforget.evaluate.metrics.leak import leak_exact
from medforget.evaluate.run import evaluate_model, read_items, write_results
from medforget.cli import app
from medforget.protect.frontier import frontier_plot
from medforget.report import build_report
from medforget.report.examples import pick_examples
from medforget.train.config import TrainConfig
from medforget.train.stages import init_model, run_stage
from medforget.world import load_benchmark

MODELS = ("base", "vanilla", "oracle", "ga")
REFERENCES = ("random-gibberish", "always-refuse")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a reader sees: text, attributes, images (class, src) and the body rows of every table by id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.attributes: list[str] = []
        self.images: list[tuple[str, str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: set[str] = set()
        self._table: str | None = None
        self._body = False
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.tags.add(tag)
        self.attributes += [v for k, v in attrs.items() if v and not (tag == "img" and k == "src")]
        if tag == "img":
            self.images.append((attrs.get("class", ""), attrs.get("src", "")))
        elif tag == "table":
            self._table = attrs.get("id", f"table{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body:
            self.tables[self._table].append([])
        elif tag == "td" and self._body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tbody":
            self._body = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def plots(self) -> list[str]:
        return [src for cls, src in self.images if cls == "plot"]

    def scans(self) -> list[str]:
        return [src for cls, src in self.images if cls == "scan"]




@pytest.fixture(scope="module")
def run_dir(smoke_bench, tmp_path_factory, one_thread) -> Path:
    """A run of real tiny models: base and ga untrained, vanilla fine-tuned two steps on train, oracle two
    steps on train without the forget splits. ga's reply to the first example question is made to state the
    private value, so the page must both flag the leak and redact it."""
    run = tmp_path_factory.mktemp("run")
    bench_dir = run / "bench"
    shutil.copytree(smoke_bench, bench_dir)
    paths = {"base": init_model(bench_dir, run / "models" / "base")}
    cfg = TrainConfig(max_steps=2, batch_size=8, lr=3e-3, save_every=0)
    for name, exclude in (("vanilla", []), ("oracle", ["forget"])):
        paths[name] = run / "models" / name
        run_stage(paths["base"], bench_dir, paths[name], "train", cfg, exclude=exclude)
    paths["ga"] = paths["base"]
    results = {name: evaluate_model(paths[name], bench_dir, limit=40, max_new_tokens=8) for name in MODELS}
    bench = load_benchmark(bench_dir)
    ga_records = results["ga"][1]
    answered = {r["id"] for r in results["vanilla"][1] if r["split"] == "forget_privacy"}
    first = pick_examples(bench["forget_privacy"].to_list(), answered)[0]
    leaky = next(r for r in ga_records if r["id"] == first["id"] and r["split"] == "forget_privacy")
    leaky["prediction"] = f"It is {first['answer']}."
    for name, (metrics, records) in results.items():
        write_results(metrics, records, run / "eval" / f"{name}.json")
    models = {name: {"kind": "method" if name == "ga" else name, "method": "ga" if name == "ga" else None,
                     "seconds": s, "path": f"models/{name}"} for name, s in zip(MODELS, (6.0, 95.0, 90.0, 12.5))}
    (run / "run.json").write_text(json.dumps({"name": "report-test", "preset": "smoke", "seed": 0, "scenario": "both",
                                              "methods": ["ga"], "models": models}))
    build_report(run)
    return run


@pytest.fixture(scope="module")
def page(run_dir) -> Page:
    return Page((run_dir / "report.html").read_text())


def forget_private_values(run_dir: Path) -> dict[str, str]:
    ds = load_benchmark(run_dir / "bench")["forget_privacy"]
    return {a: f for a, f, p in zip(ds["answer"], ds["field"], ds["is_private"]) if p}


def expected_examples(run_dir: Path) -> list[dict]:
    """The examples the page must show: picked among the questions the vanilla model answered."""
    ids = {r["id"] for r in read_items(run_dir / "eval" / "vanilla.json") if r["split"] == "forget_privacy"}
    return pick_examples(load_benchmark(run_dir / "bench")["forget_privacy"].to_list(), ids)


def test_three_files_with_one_leaderboard_row_per_model(run_dir, page):
    for name in ("report.html", "leaderboard.md", "results.json"):
        assert (run_dir / name).stat().st_size > 0
    rows = page.tables["leaderboard-both"]  # run.json of one scenario, "both": one leaderboard
    assert [r[0].split(" ")[0] for r in rows] == [*MODELS, *REFERENCES]  # the references below the methods
    assert rows[3][0] == "ga (method)" and rows[3][-1] == "12 s"
    assert rows[4][0] == "random-gibberish (reference)"
    markdown = (run_dir / "leaderboard.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(MODELS) + len(REFERENCES)
    assert markdown.count("\n- **") >= len(table[0].split("|")) - 2  # a legend line per column


def test_results_json_is_strict_and_holds_metrics_comparison_and_rows(run_dir):
    results = json.loads((run_dir / "results.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert results["run"]["name"] == "report-test"
    evaluated = json.loads((run_dir / "eval" / "vanilla.json").read_text())
    assert results["models"]["vanilla"]["metrics"]["splits"] == evaluated["splits"]
    comparison = results["comparison"]["both"]
    assert set(comparison) == {*MODELS, *REFERENCES}
    assert comparison["oracle"]["forget_quality"]["forget_privacy"] == pytest.approx(1.0)
    assert comparison["vanilla"]["ues"]["privacy"]["forgetting"] in (0.0, None)  # None: every split skipped
    board = results["leaderboards"]["both"]
    rows = {r["model"]: r for r in board["rows"]}
    assert rows["vanilla"]["forget"] == pytest.approx(evaluated["splits"]["forget_privacy"]["mcq_acc"])
    assert rows["vanilla"]["mia_auroc"] == pytest.approx(evaluated["membership"]["min_k_pp"]["auroc"])
    assert rows["ga"]["seconds"] == 12.5
    assert {c["key"] for c in board["columns"]} >= {"ues_privacy", "ues_incorrect", "refusal_holdout_gap", "corrupted", "neighbour"}


def test_real_models_and_references_on_the_ues_with_intervals(run_dir):
    """What holds for real smoke models whatever they learned (two training steps learn little, so the run
    may have no split with a clear gap and then no UES): the splits are chosen once for every model; the
    oracle's forgetting is 1 and vanilla's 0 by construction; refusing everything keeps only the oracle's
    own refusal share as behaviour credit; every rate carries a 95 % interval."""
    results = json.loads((run_dir / "results.json").read_text())
    cmp = results["comparison"]["both"]
    for scenario in ("privacy", "incorrect"):
        ues = {n: c["ues"][scenario] for n, c in cmp.items()}
        assert len({json.dumps(u["kept"]) for u in ues.values()}) == 1
        assert ues["vanilla"]["forgetting"] in (0.0, None) and ues["oracle"]["forgetting"] in (1.0, None)
        assert ues["vanilla"]["ues"] is None or ues["vanilla"]["ues"] <= 0.05
        assert ues["always-refuse"]["behaviour"] == pytest.approx(ues["oracle"]["refusing"])
        assert ues["always-refuse"]["ues"] is None or ues["always-refuse"]["ues"] <= 0.30
        assert ues["random-gibberish"]["ues"] is None or ues["random-gibberish"]["ues"] <= 0.10
    rows = {r["model"]: r for r in results["leaderboards"]["both"]["rows"]}
    assert [rows[n]["kind"] for n in REFERENCES] == ["reference", "reference"]
    for name in (*MODELS, *REFERENCES):
        for key in ("forget", "retain", "leak", "refusal_forget"):
            if (name, key) == ("ga", "leak"):
                continue  # the fixture made one reply leak after ga's metrics were computed
            low, high = rows[name][f"{key}_ci_low"], rows[name][f"{key}_ci_high"]
            if low is None and key != "retain":
                continue  # items of a single patient: no interval (retain has many patients)
            assert low - 1e-9 <= rows[name][key] <= high + 1e-9, (name, key)
    assert rows["always-refuse"]["refusal_forget"] == 1.0 and rows["random-gibberish"]["leak"] == 0.0
    assert " ± " in (run_dir / "leaderboard.md").read_text()


def test_page_is_self_contained_with_plots_and_scans(run_dir, page):
    assert not {"script", "link", "iframe"} & page.tags
    assert all(src.startswith("data:image/png;base64,") for _, src in page.images)
    assert all(base64.b64decode(src.split(",", 1)[1])[:8] == PNG for _, src in page.images)
    assert len(page.plots()) == 3  # trade-off, per-split bars, ROC
    examples = expected_examples(run_dir)
    assert examples and len(page.scans()) == sum(len(r["scan_ids"]) for r in examples)
    text = " ".join(page.text)
    for heading in ("Leaderboard", "Forgetting versus keeping", "Accuracy per split", "Membership inference"):
        assert heading in text
    shown = len(MODELS) + len(REFERENCES)
    assert len(page.tables["privleak"]) == shown and len(page.tables["refusal"]) == shown


def test_a_protection_frontier_is_shown_when_the_run_has_one(run_dir, page, tmp_path):
    assert "Image protection frontier" not in " ".join(page.text)
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("models"))
    (run / "protect_frontier").mkdir()
    frontier_plot([{"world": "w", "identity_cue": "anatomy", "method": "targeted", "protector": "white-box",
                    "psnr_mean": 40.0, "protected_ratio": 0.4, "worst_ratio": 0.9}], run / "protect_frontier" / "frontier.png")
    build_report(run)
    shown = Page((run / "report.html").read_text())
    assert "Image protection frontier" in " ".join(shown.text) and len(shown.plots()) == len(page.plots()) + 1
    drawn = base64.b64encode((run / "protect_frontier" / "frontier.png").read_bytes()).decode("ascii")
    assert f"data:image/png;base64,{drawn}" in shown.plots()


def test_no_private_value_of_the_forget_set_is_shown(run_dir, page):
    shown = " ".join(page.text + page.attributes)
    markdown = (run_dir / "leaderboard.md").read_text()
    values = forget_private_values(run_dir)
    assert not [v for v in values if leak_exact(shown, v) or leak_exact(markdown, v)]
    assert "[REDACTED:" in shown
    assert "leak (exact)" in shown  # ga's planted reply is flagged, though its value is cut


def test_reveal_quotes_the_private_values(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("models"))
    build_report(copy, reveal=True)
    shown = " ".join(Page((copy / "report.html").read_text()).text)
    answer = expected_examples(run_dir)[0]["answer"]
    assert f"It is {answer}." in shown and "shown unredacted" in shown


def test_report_command_writes_the_report_and_reports_user_errors(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("models", "report.html"))
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert (copy / "report.html").is_file() and "report.html" in result.output
    result = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {CHROMIUM} is missing: the CI script must install Debian's chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


def _chromium_run(run_dir: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args, (run_dir / "report.html").as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_chromium_renders_the_page(run_dir, page, tmp_path):
    shot = tmp_path / "report.png"
    _chromium_run(run_dir, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01  # text, tables and plots, not a blank page
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report.png")

    dom = Page(_chromium_run(run_dir, tmp_path / "profile", "--dump-dom").stdout)
    assert [r[0] for r in dom.tables["leaderboard-both"]] == [r[0] for r in page.tables["leaderboard-both"]]
    assert len(dom.plots()) == len(page.plots()) and len(dom.scans()) == len(page.scans())
