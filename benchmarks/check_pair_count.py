"""Count ``chansim.inputs.distributions.check_pair`` calls per position (one (p, q) pair) at public entry points.

Issue 19, "validation once at the door": a public function checks its pair once, and the
kernels behind it take the checked arrays.  Every module-level name bound to ``check_pair``
is wrapped (``check_pair_1d`` and ``as_pair`` call it through the module, so they count
once).  Run from the repository root: ``python benchmarks/check_pair_count.py``.
"""
import sys

import numpy as np

import chansim.channel
import chansim.inputs.distributions as D
import chansim.sampling.races
import chansim.simulate
import chansim.theory
import chansim.verify

#: every module that may bind ``check_pair`` is loaded before the names are wrapped
LOADED = (chansim.channel, chansim.sampling.races, chansim.simulate, chansim.theory, chansim.verify)

CALLS = [0]
_CHECK = D.check_pair


def _counting(*args, **kwargs):
    CALLS[0] += 1
    return _CHECK(*args, **kwargs)


for _name, _mod in list(sys.modules.items()):
    if _name.startswith("chansim") and getattr(_mod, "check_pair", None) is _CHECK:
        _mod.check_pair = _counting
D.check_pair = _counting


def count(label, run):
    CALLS[0] = 0
    run()
    print(f"{label:52s} {CALLS[0]}")


def main():
    from chansim import channel, simulate, theory
    from chansim.sampling import races
    from chansim.sampling.sources import MarkovSource
    from chansim.inputs.trees import as_tree
    from chansim.verify import block, multidraft, rsd

    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(16)), rng.dirichlet(np.ones(16))
    count("races.er_acceptance", lambda: races.er_acceptance(p, q))
    count("races.rank_distribution_mc", lambda: races.rank_distribution_mc(p, q, trials=100))
    count("channel.index_pmf", lambda: channel.index_pmf(p, q, 4))
    count("channel.index_cdf", lambda: channel.index_cdf(p, q, [1, 2]))
    count("channel.expected_log2_index", lambda: channel.expected_log2_index(p, q))
    count("channel.index_entropy", lambda: channel.index_entropy(p, q))
    count("channel.expected_code_length", lambda: channel.expected_code_length(p, q))
    count("channel.zipf_code_length", lambda: channel.zipf_code_length(p, q))
    count("channel.channel_summary (trials=100)", lambda: channel.channel_summary(p, q, trials=100))
    for m, t in (("sd", "chain:3"), ("ersd", "batch:3"), ("multidraft", "batch:2"), ("block", "chain:2")):
        count(f"simulate {m} {t} (i.i.d., 200 calls)", lambda: simulate.simulate(m, t, p, q, calls=200, seed=0))
    trans = rng.dirichlet(np.ones(16), size=16)
    src_p, src_q = MarkovSource(trans), MarkovSource(0.5 * trans + 0.5 * rng.dirichlet(np.ones(16), size=16))
    count("simulate multidraft branch:2,2 (Markov, 200 calls)",
          lambda: simulate.simulate("multidraft", "branch:2,2", src_p, src_q, calls=200, seed=0))
    count("multidraft.multidraft_tree_tokens batch:3", lambda: multidraft.multidraft_tree_tokens(p, q, "batch:3"))
    count("block.block_chain_tokens_mc", lambda: block.block_chain_tokens_mc(p, q, 2, trials=100))
    count("rsd.rsd_weights", lambda: rsd.rsd_weights(p, q, 2))
    for m, t in (("multidraft", "batch:3"), ("block", "chain:3"), ("rsd", "batch:2")):
        count(f"theory.expected_tokens {m} {t}", lambda: theory.expected_tokens(m, as_tree(t), p, q))
    count("theory.speedup_report (1 position)", lambda: theory.speedup_report(p, q, k=[1, 2], pfr=True))


if __name__ == "__main__":
    main()
