"""Option parsing shared by the `protect` commands and benchmarks/protect_eval.py."""

from __future__ import annotations

from medforget.errors import MedforgetError


def parse_eps(text: str, option: str = "--eps") -> float:
    """'8/255' or '0.03' -> a float."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise MedforgetError(f"{option} must be a number or a fraction like 8/255, got {text!r}") from None


def transform_names(values: list[str]) -> tuple[str, ...] | None:
    """Repeated and/or comma-separated names; `none` alone means no post-processing; nothing given: the default."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if names == ["none"]:
        return ()
    return tuple(names) if names else None
