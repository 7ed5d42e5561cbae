"""Reading the published benchmarks' parquet files: one file or a folder of shards, image cells, JSON cells."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from medforget.errors import MedforgetError
from medforget.importers.dataset import png_from_bytes


def parquet_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not files:
        raise MedforgetError(f"{path}: no parquet file (expected a .parquet file or a folder of them)")
    return files


def read_rows(path: Path, required: tuple[str, ...], hint: str = "") -> list[tuple[str, dict]]:
    """(where, row) for every row of every file; a file without a required column is a one-line error."""
    out = []
    for file in parquet_files(path):
        try:
            table = pq.read_table(file)
        except Exception as e:  # pyarrow raises many types for a damaged file
            raise MedforgetError(f"{file}: not a readable parquet file ({type(e).__name__})") from None
        missing = [c for c in required if c not in table.column_names]
        if missing:
            raise MedforgetError(f"{file}: missing column(s) {', '.join(missing)} (has {', '.join(table.column_names)}){hint}")
        out += [(f"{file} row {i}", row) for i, row in enumerate(table.to_pylist())]
    return out


def image_png(cell: object, where: str) -> bytes:
    """A datasets Image cell ({"bytes": ...}) or raw bytes, as PNG bytes."""
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise MedforgetError(f"{where}: the image cell holds no image bytes")
    return png_from_bytes(bytes(data), f"{where}: image")


def json_cell(cell: object, where: str, column: str) -> object:
    if not isinstance(cell, str):
        return cell
    try:
        return json.loads(cell)
    except json.JSONDecodeError as e:
        raise MedforgetError(f"{where}: column {column} is not valid JSON ({e.msg})") from None


def qa_pairs(cell: object, where: str, column: str = "metadata") -> list[tuple[str, str]]:
    """A list of {"Question", "Answer"} objects (a JSON string or already parsed)."""
    value = json_cell(cell, where, column)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) and "Question" in v and "Answer" in v for v in value):
        raise MedforgetError(f"{where}: column {column} must hold a list of {{Question, Answer}} objects")
    return [(str(v["Question"]), str(v["Answer"])) for v in value]
