"""One exception base so the CLI can turn any user mistake into a one-line error instead of a traceback."""

import json
from pathlib import Path


class MedforgetError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""


def read_json(path: Path, expected: str = "") -> object:
    """Parse a JSON file the user handed us; a broken one is a one-line error naming the file and the line."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise MedforgetError(f"{path} is not valid JSON (line {e.lineno}: {e.msg}){'; expected ' + expected if expected else ''}") from None
