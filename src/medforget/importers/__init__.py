"""Importers: other people's data as a medforget dataset folder (docs/import.md), one module per format."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from medforget.errors import MedforgetError

#: format -> (module, function); each function takes (src, nonmembers) and returns an `Imported`.
FORMATS: dict[str, tuple[str, str]] = {
    "records": ("medforget.importers.records", "import_records"),
    "dicom": ("medforget.importers.dicom", "import_dicom"),
    "mllmu": ("medforget.importers.mllmu", "import_mllmu"),
    "clear": ("medforget.importers.clear", "import_clear"),
    "medforget": ("medforget.importers.medforget_layout", "import_medforget"),
}


def import_dataset(fmt: str, src: Path, out: Path, forget: Path | None = None, nonmembers: list[Path] = (),
                   overwrite: bool = False) -> dict:
    """Parse `src` in format `fmt` and write it, validated, to `out`; return the folder's metadata."""
    from medforget.importers.dataset import write_imported
    from medforget.importers.request import read_request

    if fmt not in FORMATS:
        raise MedforgetError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    module, name = FORMATS[fmt]
    data = getattr(import_module(module), name)(Path(src), [Path(p) for p in nonmembers])
    request = read_request(forget) if forget else None
    if request is not None and data.aliases:
        request = request.renamed(**data.aliases)
    return write_imported(data, Path(out), request, overwrite=overwrite)
