"""One exception base so the CLI can turn any user mistake into a one-line error instead of a traceback."""


class MedforgetError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""
