r"""The tree behind each value of the bound report: ``report_tree``.

:func:`chansim.theory.report.speedup_report` returns tokens per call (and the draft
depth) of every method at every budget k on the ``optimal``, ``chain`` or ``batch`` tree;
this module returns that tree itself, so that a Monte Carlo run (:func:`chansim.simulate.simulate`)
can be checked against the report's number on the very same tree.  It follows the report's
family rules (:data:`chansim.theory.report.FAMILIES`, docs/theory.md §6–§7):

* ``chain`` / ``batch`` — the fixed ``chain:k`` / ``batch:k`` (a chain-only method has no
  batch beyond k = 1);
* ``optimal`` by ``Method.tree_family`` — ``chain``: the chain; ``sibling-closed``: the best
  sibling-closed tree on the method's slot weights (:func:`best_sibling_closed_tree`, the same
  weights and seed as the report); ``rank-set``: the best rank-set tree (:func:`best_rank_set_tree`);
  ``sequences``: ``seq:CxL`` from :func:`chansim.theory.report.best_sequences`; a method with
  its own report rule (``report_tokens``: block, multidraft): the chain when it runs on chains
  only, else no optimal tree (None).
"""
from __future__ import annotations

from ..inputs.trees import Tree
from ..verify.registry import get_method
from .optimal import best_rank_set_tree, best_sibling_closed_tree
from .ranklaw import rank_law

__all__ = ["report_tree"]


def report_tree(method: str, p, q, k: int, shape: str, *, law=None, seed: int = 0) -> Tree | str | None:
    """The tree (a :class:`~chansim.inputs.trees.Tree` or a spec string) the report values at budget k, or None.

    Parameters
    ----------
    method : str
        A registered method with a tree family (``method_names(theory=True)``).
    p, q : ndarray, shape (V,)
        Validated target and draft distributions.
    k : int
        Budget of drafted tokens.
    shape : {"optimal", "chain", "batch"}
        The report's ``tree=`` argument.
    law : RankLaw, optional
        The rank law the report used (computed exactly when omitted and needed).
    seed : int
        The report's seed (Monte Carlo slot weights, e.g. rsd at large V).

    Returns
    -------
    Tree or str or None
        None where the report has no value (a batch for a chain-only method, k > 1; an
        optimal tree for a method whose report rule has none).

    Examples
    --------
    >>> from chansim.verify import SD, SpecTr
    >>> report_tree(SD(), [0.5, 0.5], [0.3, 0.7], 3, "optimal")
    'chain:3'
    >>> report_tree(SpecTr(), [0.5, 0.3, 0.2], [0.2, 0.5, 0.3], 4, "optimal")
    'seq:1x4'
    """
    from .report import FAMILIES, best_sequences     # report imports nothing from here

    meth = get_method(method)
    if meth.tree_family is None:
        raise ValueError(f"method {method!r} drafts nothing: no report tree")
    k = int(k)
    if shape == "chain":
        return f"chain:{k}"
    if shape == "batch":
        return f"batch:{k}" if not meth.chains_only or k == 1 else None
    if shape != "optimal":
        raise ValueError(f"shape must be one of optimal, chain, batch, got {shape!r}")
    family = meth.tree_family if meth.tree_family in FAMILIES else None
    if family == "chain" or (family is None and meth.chains_only):
        return f"chain:{k}"
    from .report import MAX_RANKS, _weights

    if family == "sibling-closed":
        if law is None and meth.uses_race:
            law = rank_law(p, q, max_rank=min(max(k, 64), MAX_RANKS))   # K = V up to 64, guaranteed error
        weights = _weights(meth, p, q, k, law if meth.uses_race else None, seed)[0]
        return best_sibling_closed_tree(weights, k, name=method)
    if family == "rank-set":
        law = rank_law(p, q, max_rank=min(max(k, 64), MAX_RANKS)) if law is None else law
        return best_rank_set_tree(law.probs, k)
    if family == "sequences":
        _, length = best_sequences(p, q, k)
        return f"seq:{k // length}x{length}"
    return None
