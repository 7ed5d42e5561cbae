"""Input checks shared by the metric modules: fail loudly instead of averaging mismatched lists."""

from __future__ import annotations

from collections.abc import Sized


def same_length(**named: Sized) -> int:
    """Return the common length of ``named`` sequences; raise if they differ or are empty.

    A silent ``zip`` over lists of different lengths would score the wrong items against each other.
    """
    lengths = {name: len(seq) for name, seq in named.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs differ in length: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("no items to score")
    return n
