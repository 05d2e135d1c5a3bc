"""Argument types of the ``quantnas`` command: checked numbers, and ``--penalties``' list of
numbers that ends at the first token that is not one.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["NumbersThenRest", "finite", "nonnegative_float", "positive_float", "positive_int"]


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def finite(text: str, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        want = "a finite number > 0" if positive else "a finite number >= 0"
        raise argparse.ArgumentTypeError(f"expected {want}, got {text[:40]!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return finite(text, positive=True)


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    return finite(text, positive=False)


class NumbersThenRest(argparse.Action):
    """``--penalties 0 0.5 key=value``: the numbers up to the first token that is not one;
    the tokens from there on are config overrides (kept in ``value_overrides``). Their
    range (finite, >= 0) is checked with the config (``sweep.penalties``).
    """

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        numbers: list[float] = []
        for i, token in enumerate(values):
            try:
                value = float(token)
            except ValueError:
                rest = list(values[i:])
                break
            numbers.append(value)
        else:
            rest = []
        if not numbers:
            parser.error(f"{option_string}: expected at least one number, got {values[0]!r}")
        setattr(namespace, self.dest, numbers)
        namespace.value_overrides = rest
