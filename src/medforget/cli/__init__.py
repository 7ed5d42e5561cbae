"""The `medforget` command line: one module per command group, `shared` for what they have in common.

Each command is a thin wrapper: parse, call the library, print. Nothing outside this package imports it."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import typer  # noqa: E402

from medforget.cli import evaluate, methods, protect, report, run, train, world  # noqa: E402

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Find, remove and prove the removal of private and incorrect knowledge in biomedical VLMs.",
)
COMMANDS = (
    ("generate", world.generate), ("import", world.import_cmd), ("validate", world.validate), ("show", world.show),
    ("init-model", train.init_model_cmd), ("pretrain", train.pretrain), ("finetune", train.finetune),
    ("evaluate", evaluate.evaluate), ("audit", evaluate.audit),
    ("protect", protect.protect), ("protect-eval", protect.protect_eval),
    ("run", run.run), ("unlearn", methods.unlearn_command), ("methods", methods.methods_command), ("report", report.report),
)
for name, command in COMMANDS:
    app.command(name)(command)


def main() -> None:  # pragma: no cover - console entry for `python -m medforget.cli`
    app(prog_name="medforget")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
