r"""Theory of speculative decoding in the i.i.d. model: exact expectations, optimal trees,
the large-k relation and the all-k bound (derivations in docs/theory.md).

Modules, one job each:

* :mod:`~chansim.theory.ranklaw` — the ERSD rank law a_r, H(R), E[(ln a_R)^2] with a proved
  l1 error at every V (full law for V <= 64, a guaranteed truncated law above; MC kept);
* :mod:`~chansim.theory.nodes` — per-slot acceptance weights of one node (validating entry
  points; each method's mathematics lives in its module ``chansim/verify/<method>.py``);
* :mod:`~chansim.theory.expectations` — E[tokens per call] for any registered method and tree;
* :mod:`~chansim.theory.lp` — the optimal acceptance of a node (transport LP, min-cut, without replacement);
* :mod:`~chansim.theory.optimal` — optimal trees for a budget of k drafted tokens;
* :mod:`~chansim.theory.asymptotics` — large-k relation, renewal constant, all-k bound;
* :mod:`~chansim.theory.symbolic` — sympy derivations of the closed forms;
* :mod:`~chansim.theory.report` — :func:`speedup_report` behind ``chansim bound``.
"""
from .asymptotics import all_k_bound, large_k_relation, naive_log_ratio, outcome_entropy, renewal_constant
from .expectations import (METHODS, Expectation, expected_tokens, path_probabilities, sd_chain_tokens,
                           sequences_shape, spectr_sequences_tokens, tree_value)
from .lp import draft_set_law, mincut_without_replacement, optimal_acceptance_lp, optimal_acceptance_mincut
from .nodes import (SlotWeights, node_acceptance, rsd_weights, sd_weights, specinfer_weights, spectr_acceptance,
                    spectr_rho, spectr_transition)
from .optimal import (best_rank_set_tree, best_sibling_closed_tree, sibling_closed_sums, sibling_closed_values,
                      top_products_curve, top_products_depths, top_products_sums, top_products_table, tree_shape)
from .ranklaw import RankLaw, law_from_probs, rank_law

__all__ = [
    "RankLaw", "rank_law", "law_from_probs",
    "SlotWeights", "sd_weights", "specinfer_weights", "rsd_weights", "spectr_rho", "spectr_acceptance",
    "spectr_transition", "node_acceptance",
    "METHODS", "Expectation", "tree_value", "path_probabilities", "sd_chain_tokens", "expected_tokens",
    "sequences_shape", "spectr_sequences_tokens",
    "draft_set_law", "mincut_without_replacement", "optimal_acceptance_lp", "optimal_acceptance_mincut",
    "best_rank_set_tree", "best_sibling_closed_tree", "sibling_closed_sums", "sibling_closed_values", "top_products_curve", "top_products_sums", "top_products_depths", "top_products_table", "tree_shape",
    "renewal_constant", "large_k_relation", "all_k_bound", "naive_log_ratio", "outcome_entropy",
]
from .report import BoundReport, speedup_report  # noqa: E402

__all__ += ["BoundReport", "speedup_report"]
