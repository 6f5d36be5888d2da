"""The one registry of verification methods: names → method classes, and every list derived from it.

Each method lives in one module, ``chansim/verify/<name>.py`` (sampling rule, node
weights, path acceptance, tree shapes, display style; see :class:`~chansim.verify.base.Method`),
and is listed once in :data:`METHODS`.  Every other layer asks this module:

* :func:`get_method` — an instance by name (the CLI, the walks, the engine, the theory);
* :func:`method_names` — filtered lists: the bound report's methods (``tree_family``),
  path prediction (``has_path_prediction``), validation defaults (no variants);
* :func:`baseline`, :func:`role` — the method that drafts nothing, and the method playing a
  named part for other layers (``Method.roles``);
* :func:`style` — label, colour and marker of a method in tables and figures.

How to add a method: docs/architecture.md.
"""
from __future__ import annotations

from .autoregressive import Autoregressive
from .base import Method
from .block import Block
from .ersd import ERSD, ERSDTopM
from .multidraft import Multidraft
from .rsd import RSD
from .sd import SD
from .specinfer import SpecInfer
from .spectr import SpecTr

__all__ = ["METHODS", "get_method", "method_names", "default_methods", "baseline", "is_baseline", "role", "style"]

#: every verification method by name, in display order (variants after their method)
METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (
    Autoregressive, SD, SpecInfer, RSD, SpecTr, ERSD, ERSDTopM, Block, Multidraft,
)}


def get_method(method, **options) -> Method:
    """A method instance from its name (with options, e.g. ``rho`` for spectr) or an instance.

    >>> get_method("ersd")
    ERSD()
    >>> get_method("beam")
    Traceback (most recent call last):
    ...
    ValueError: unknown method 'beam'; choose from autoregressive, sd, specinfer, rsd, spectr, ersd, ersd-topm, block, multidraft
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


def method_names(*, drafting: bool | None = None, theory: bool | None = None, path: bool | None = None,
                 variants: bool = True, default: bool | None = None) -> tuple:
    """Registered names in display order, filtered by what the methods provide.

    Parameters
    ----------
    drafting : bool, optional
        Only methods that draft (True) or that draft nothing (False).
    theory : bool, optional
        Only methods with a tree family for the bound report (True) or without (False).
    path : bool, optional
        Only methods with (True) or without (False) prediction from a logged path.
    variants : bool
        Include registered variants (``variant_of`` set, e.g. ``ersd-topm``).
    default : bool, optional
        Only methods that ``chansim llm validate`` runs by default (``validated_by_default``).

    >>> method_names(theory=True)
    ('sd', 'specinfer', 'rsd', 'spectr', 'ersd', 'ersd-topm', 'block', 'multidraft')
    >>> method_names(path=True, variants=False)
    ('autoregressive', 'sd', 'specinfer', 'rsd', 'spectr', 'ersd', 'block', 'multidraft')
    >>> method_names(drafting=True, path=True, variants=False, default=True)
    ('sd', 'specinfer', 'rsd', 'spectr', 'ersd', 'block')
    """
    out = []
    for name, cls in METHODS.items():
        if drafting is not None and (cls.min_drafts > 0) != drafting:
            continue
        if theory is not None and (cls.tree_family is not None) != theory:
            continue
        if path is not None and cls.has_path_prediction != path:
            continue
        if not variants and cls.variant_of is not None:
            continue
        if default is not None and cls.validated_by_default != default:
            continue
        out.append(name)
    return tuple(out)


def default_methods(purpose: str, *, vocab: int | None = None, kmax: int | None = None) -> tuple:
    """The methods a command uses when none is named, in display order; each method says
    where it belongs (:meth:`~chansim.verify.base.Method.in_default`).

    ``purpose``: ``"bound"`` (``chansim bound``; ``vocab`` and ``kmax`` decide the costly
    ones), ``"top-n"``, ``"temperature"``, ``"settings-check"`` or ``"validate"``.

    >>> default_methods("bound", vocab=1000, kmax=64)
    ('sd', 'specinfer', 'ersd', 'ersd-topm')
    >>> default_methods("bound", vocab=8, kmax=4)
    ('sd', 'specinfer', 'rsd', 'spectr', 'ersd', 'ersd-topm')
    >>> default_methods("top-n"), default_methods("temperature")
    (('sd', 'specinfer'), ('sd', 'specinfer', 'ersd'))
    """
    if purpose == "validate":
        return method_names(drafting=True, path=True, variants=False, default=True)
    purposes = ("bound", "top-n", "temperature", "settings-check")
    if purpose not in purposes:
        raise ValueError(f"unknown default list {purpose!r}; choose from {', '.join(purposes + ('validate',))}")
    return tuple(name for name, cls in METHODS.items() if cls().in_default(purpose, vocab, kmax))


def baseline() -> str:
    """The registered method that drafts nothing (``min_drafts == 0``): every speed-up's baseline.

    >>> baseline()
    'autoregressive'
    """
    names = method_names(drafting=False)
    if len(names) != 1:
        raise RuntimeError(f"the registry must hold exactly one method that drafts nothing, has {names}")
    return names[0]


def is_baseline(method) -> bool:
    """True for the method that drafts nothing (by name or instance); False for any other name,
    registered or not (rows of other tools, e.g. ``"hf-assisted"``).

    >>> is_baseline("autoregressive"), is_baseline("sd"), is_baseline("hf-assisted")
    (True, False, False)
    """
    if isinstance(method, Method):
        return method.min_drafts == 0
    return method in METHODS and METHODS[method].min_drafts == 0


def role(part: str) -> str:
    """The registered method that plays ``part`` (``Method.roles``: ``"chain-reference"``, the
    single-draft rule; ``"rank-law"``, the method whose acceptance is the rank law); a variant
    (``variant_of``) inherits its method's roles but never plays them.

    >>> role("chain-reference") == baseline()
    False
    >>> get_method(role("rank-law")).uses_race
    True
    """
    names = tuple(name for name, cls in METHODS.items() if part in cls.roles and cls.variant_of is None)
    if len(names) != 1:
        known = sorted({r for cls in METHODS.values() for r in cls.roles})
        raise ValueError(f"role {part!r} must be held by exactly one method, is held by {names}; "
                         f"roles: {', '.join(known)}")
    return names[0]


def style(name: str) -> tuple:
    """``(label, colour, marker)`` of a registered method.

    >>> style("sd")
    ('sd (single draft)', '#1f77b4', 'o')
    """
    cls = METHODS[name] if name in METHODS else get_method(name)
    return cls.label, cls.colour, cls.marker
