"""Method names → strategy classes."""
from __future__ import annotations

from .autoregressive import Autoregressive
from .base import Method
from .block import Block
from .ersd import ERSD
from .multidraft import Multidraft
from .rsd import RSD
from .sd import SD
from .specinfer import SpecInfer
from .spectr import SpecTr

__all__ = ["METHODS", "get_method"]

#: every verification method by name
METHODS: dict[str, type[Method]] = {
    "autoregressive": Autoregressive,
    "sd": SD,
    "specinfer": SpecInfer,
    "rsd": RSD,
    "spectr": SpecTr,
    "ersd": ERSD,
    "block": Block,
    "multidraft": Multidraft,
}


def get_method(method, **options) -> Method:
    """A method instance from its name (with options, e.g. ``rho`` for spectr) or an instance.

    >>> get_method("ersd")
    ERSD()
    >>> get_method("beam")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'beam'; choose from autoregressive, sd, specinfer, rsd, spectr, ersd, block, multidraft
    """
    if isinstance(method, Method):
        if options:
            raise ValueError(f"options {sorted(options)} given with a method instance {method!r}")
        return method
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    try:
        return METHODS[method](**options)
    except TypeError as err:
        raise ValueError(f"bad options {sorted(options)} for method {method!r}: {err}") from None
