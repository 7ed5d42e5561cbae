"""`python -m medforget ...` (what `accelerate launch -m medforget ...` runs in each process)."""

from medforget.cli import app

app(prog_name="medforget")
