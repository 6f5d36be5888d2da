"""Whole numbers a user hands chansim (budgets, widths, trial counts), checked once at the door."""
from __future__ import annotations

__all__ = ["whole_number"]


def whole_number(value, what: str, minimum: int = 1) -> int:
    """``value`` as an ``int``, refused (``ValueError`` naming ``what``) unless it is a whole number >= ``minimum``.

    Booleans are refused (``True`` is not a budget); ``4.0`` is taken as 4.

    >>> whole_number(4.0, "k")
    4
    >>> whole_number(0, "k")
    Traceback (most recent call last):
    ...
    ValueError: k must be a positive integer, got 0
    >>> whole_number(-1, "gamma", minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: gamma must be a non-negative integer, got -1
    """
    if isinstance(value, bool) or int(value) != value or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{what} must be {kind}, got {value!r}")
    return int(value)
