"""Write a generated benchmark in the `records` format and re-import it, for the import path's check on
`demo`: an audit of the vanilla model on the re-imported folder should find the forgotten patients' leak
at the level `medforget evaluate` reports on the benchmark itself.

    python benchmarks/export_records.py runs/demo/bench runs/demo/records
    medforget import records runs/demo/records/records.jsonl --forget runs/demo/records/forget.txt \
        --nonmembers runs/demo/records/nonmembers.jsonl --out runs/demo/imported
    medforget audit --model runs/demo/models/vanilla --data runs/demo/imported --out runs/demo/audit-vanilla
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medforget.importers.export import export_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    counts = export_records(args.bench, args.out, overwrite=args.overwrite)
    print(f"{counts['records']} records, {counts['nonmembers']} non-member records, {counts['images']} images -> {args.out}")


if __name__ == "__main__":
    main()
