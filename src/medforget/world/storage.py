"""The benchmark on disk: a Hugging Face DatasetDict plus benchmark.json, read and written in one place."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from datasets import Dataset, DatasetDict, Features, Image, List, Value, load_from_disk
from PIL import Image as PILImage

from medforget.errors import MedforgetError, read_json

FORMAT_VERSION = 2
META_FILE = "benchmark.json"
#: The splits a dataset folder must have (docs/dataset.md). A generated benchmark has all of
#: world.splits.SPLITS; an imported one may lack the others, and every command skips what is absent.
REQUIRED_SPLITS: tuple[str, ...] = ("train", "retain", "forget_privacy")


def is_imported(meta: dict) -> bool:
    """Written by `medforget import` (any source) rather than by `medforget generate`."""
    return "source" in meta

ROW_FEATURES = Features({
    "id": Value("string"),
    "patient_id": Value("string"),
    "split": Value("string"),
    "scenario": Value("string"),
    "task": Value("string"),
    "condition": Value("string"),
    "question": Value("string"),
    "answer": Value("string"),
    "options": List(Value("string")),
    "correct_index": Value("int32"),
    "field": Value("string"),
    "is_private": Value("bool"),
    "is_incorrect": Value("bool"),
    "true_answer": Value("string"),
    "template_id": Value("string"),
    "scan_ids": List(Value("string")),
    "fact_id": Value("string"),
    "neighbour_of": List(Value("string")),
})
SCAN_FEATURES = Features({
    "scan_id": Value("string"),
    "patient_id": Value("string"),
    "group": Value("string"),
    "role": Value("string"),
    "modality": Value("string"),
    "region": Value("string"),
    "finding": Value("string"),
    "laterality": Value("string"),
    "location": Value("string"),
    "size_mm": Value("float64"),
    "quality": Value("string"),
    "landmarks": List({"name": Value("string"), "x": Value("float64"), "y": Value("float64")}),
    "marker_shape": Value("string"),
    "marker_slot": Value("int32"),
    "image": Image(),
})


def to_dataset_dict(splits: dict[str, list[dict]], scans: list[dict]) -> DatasetDict:
    dd = {name: _dataset(rows, ROW_FEATURES) for name, rows in splits.items()}
    dd["scans"] = _dataset(scans, SCAN_FEATURES)
    return DatasetDict(dd)


def _dataset(rows: list[dict], features: Features) -> Dataset:
    """An empty split keeps its columns (`from_list([])` would store a table without any)."""
    return Dataset.from_list(rows, features=features) if rows else Dataset.from_dict({k: [] for k in features}, features=features)


def content_hash(dd: DatasetDict) -> str:
    """SHA-256 over every row of every split, images as their PNG bytes; independent of file layout."""
    h = hashlib.sha256()
    for name in sorted(dd):
        ds = dd[name]
        if "image" in ds.column_names:
            ds = ds.cast_column("image", Image(decode=False))
        h.update(name.encode())
        for batch in ds.iter(batch_size=1000):
            for i in range(len(next(iter(batch.values())))):
                row = {k: v[i] for k, v in batch.items()}
                image = row.pop("image", None)
                h.update(json.dumps(row, sort_keys=True, default=_float).encode())
                if image is not None:
                    h.update(image["bytes"] or b"")
    return h.hexdigest()


def _float(value: object) -> object:
    raise TypeError(f"unexpected value in benchmark row: {value!r}")


def write_atomically(out: Path, fill, overwrite: bool) -> None:
    """Write a folder through `fill(tmp_dir)`, then move it into place, so `out` is never half written."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MedforgetError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save(dd: DatasetDict, meta: dict, card: str, folder: Path) -> None:
    for name, ds in dd.items():  # a fingerprint derived from the content keeps state.json byte-identical
        ds._fingerprint = hashlib.sha256(f"{meta['content_hash']}:{name}".encode()).hexdigest()[:16]
    dd.save_to_disk(str(folder), num_shards={name: 1 for name in dd})
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    (folder / "README.md").write_text(card)


def read_meta(folder: Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise MedforgetError(f"benchmark folder {folder} does not exist")
    path = folder / META_FILE
    if not path.is_file():
        raise MedforgetError(f"{folder} is not a medforget benchmark: {META_FILE} is missing (make one with `medforget generate`)")
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
        raise MedforgetError(f"{path}: unsupported benchmark format version {meta.get('version') if isinstance(meta, dict) else meta!r}, expected {FORMAT_VERSION}")
    return meta


class Benchmark:
    """A generated benchmark: its splits, its metadata, and the images its rows point to."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        try:
            self.splits: DatasetDict = load_from_disk(str(self.folder))
        except Exception as e:  # datasets raises many types for a damaged folder
            raise MedforgetError(f"cannot read the datasets in {self.folder}: {type(e).__name__}: {e}") from None
        if "scans" not in self.splits:
            raise MedforgetError(f"{self.folder} has no 'scans' split")
        self._scan_index: dict[str, int] | None = None
        self._raw_scans = None

    def __getitem__(self, split: str) -> Dataset:
        if split not in self.splits:
            raise MedforgetError(f"unknown split {split!r}; this benchmark has: {', '.join(self.splits)}")
        return self.splits[split]

    @property
    def scan_index(self) -> dict[str, int]:
        if self._scan_index is None:
            self._scan_index = {sid: i for i, sid in enumerate(self.splits["scans"]["scan_id"])}
        return self._scan_index

    def image(self, scan_id: str) -> PILImage.Image:
        if self._raw_scans is None:
            self._raw_scans = self.splits["scans"].cast_column("image", Image(decode=False))
        try:
            data = self._raw_scans[self.scan_index[scan_id]]["image"]["bytes"]
        except KeyError:
            raise MedforgetError(f"scan {scan_id!r} is not in {self.folder}/scans") from None
        return PILImage.open(io.BytesIO(data)).convert("L")

    def images(self, row: dict) -> list[PILImage.Image]:
        return [self.image(s) for s in row["scan_ids"]]


class ImageCache:
    """Decoded scans of one benchmark, each decoded once however many rows show it; call with a row."""

    def __init__(self, bench: Benchmark) -> None:
        self.bench, self.images = bench, {}

    def __call__(self, row: dict) -> list[PILImage.Image]:
        for s in row["scan_ids"]:
            if s not in self.images:
                self.images[s] = self.bench.image(s)
        return [self.images[s] for s in row["scan_ids"]]


def load_benchmark(folder: Path | str) -> Benchmark:
    return Benchmark(folder)
