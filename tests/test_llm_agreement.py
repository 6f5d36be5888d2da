"""Noise-or-bias statistics for validation tables (chansim.logs.agreement), on synthetic logs with known laws."""
import numpy as np
import pytest

from chansim.logs.agreement import (ersd_noise_check, path_law_check, pool_by_group, realised_calls, row_z,
                                   row_z_table, sign_test, stouffer)
from chansim.sampling.races import keyed_exponential, race_winner
from chansim.verify import KeyedNoise, as_tree, get_method, speculative_generate

Z_MAX = 5.33      # two-sided p = 1e-7 under N(0, 1): a correct implementation fails < 1 in 10^6 runs


class _Run:
    """A log in memory (float64 laws, no float16 rounding): the duck type the checks read."""

    def __init__(self, prompts, tokens, p, q, seed):
        self.prompts, self.tokens, self.p, self.q = prompts, tokens, p, q
        self.metadata = {"seed": seed}

    def sequences(self):
        return zip(self.p, self.q, self.tokens)


def _laws(rng, n_seq, length, vocab):
    p = rng.dirichlet(np.full(vocab, 0.7), size=(n_seq, length))                # [n, T, V]
    q = 0.5 * p + 0.5 * rng.dirichlet(np.full(vocab, 0.7), size=(n_seq, length))
    return p, q


def _race_paths(p, prompts, seed):
    """Keyed race sampling of the target at absolute positions (what 'llm log' does)."""
    out = []
    for i, rows in enumerate(p):
        pos = len(prompts[i]) + np.arange(len(rows))
        out.append(race_winner(keyed_exponential(seed, pos[:, None], np.arange(rows.shape[1])), rows))
    return out


def _run(sampler, seed=3, n_seq=40, length=50, vocab=6, law_seed=0):
    rng = np.random.default_rng(law_seed)
    p, q = _laws(rng, n_seq, length, vocab)
    prompts = [[1] * (2 + i % 3) for i in range(n_seq)]
    if sampler == "race":
        tokens = _race_paths(p, prompts, seed)
    elif sampler == "rng":               # right law, but not the keyed noise ERSD will use
        tokens = [np.array([rng.choice(vocab, p=r) for r in rows]) for rows in p]
    elif sampler == "draft":             # broken: the text follows the draft, not the target
        tokens = [np.array([rng.choice(vocab, p=r) for r in rows]) for rows in q]
    return _run_obj(prompts, tokens, p, q, seed)


def _run_obj(prompts, tokens, p, q, seed):
    return _Run(prompts, [np.asarray(t, dtype=np.int64) for t in tokens], list(p), list(q), seed)


def test_path_law_check_accepts_target_text_and_catches_draft_text():
    for law_seed in range(3):
        for sampler in ("race", "rng"):
            res = path_law_check(_run(sampler, law_seed=law_seed))
            assert res["positions"] == 2000 and abs(res["z"]) < Z_MAX, (sampler, res["z"])
    broken = path_law_check(_run("draft"))
    assert broken["z"] > 10 and broken["mean_c"] > broken["mean_beta"]


def test_ersd_noise_check_is_null_for_keyed_race_paths_and_catches_other_noise():
    for law_seed in range(3):
        res = ersd_noise_check(_run("race", law_seed=law_seed), [1, 1])
        assert abs(res["z"][1]) < Z_MAX, res["z"]
        res = ersd_noise_check(_run("race", law_seed=law_seed), [3])
        assert abs(res["z"][3]) < Z_MAX, res["z"]
    # the path does not come from the keyed noise ERSD uses: ranks no longer follow c^ER
    broken = ersd_noise_check(_run("rng"), [1])
    assert abs(broken["z"][1]) > 10


class _PositionSource:
    """A source whose next-token law depends only on the absolute position (table [positions, V])."""

    def __init__(self, table):
        self.table = table
        self.vocab_size = table.shape[1]

    def tree_probs(self, prefix, parents, tokens):
        from chansim.llm.scoring import tree_depths

        return self.table[len(prefix) + tree_depths(np.asarray(parents))]


@pytest.mark.parametrize("tree, widths", [("chain:1", [1]), ("chain:3", [1, 1, 1]), ("batch:3", [3])])
def test_realised_calls_equal_ersd_generation_with_the_logs_seed(tree, widths):
    seed, n_seq, length, vocab = 11, 6, 30, 5
    run = _run("race", seed=seed, n_seq=n_seq, length=length, vocab=vocab)
    res = ersd_noise_check(run, widths)
    for i in range(n_seq):
        lp = len(run.prompts[i])
        pad = np.full((lp + length + 8, vocab), 1.0 / vocab)              # laws past the end are never used
        tp, tq = pad.copy(), pad.copy()
        tp[lp:lp + length], tq[lp:lp + length] = run.p[i], run.q[i]
        out = speculative_generate(get_method("ersd"), as_tree(tree), _PositionSource(tp), _PositionSource(tq),
                                   length, KeyedNoise(seed), prefix=list(run.prompts[i]))
        assert np.array_equal(out.tokens, run.tokens[i])                 # ersd regenerates the race path
        assert len(out.steps) == res["realised_calls"][i]                 # and its calls follow from the ranks


def test_realised_calls_walk():
    a = np.array([True, True, False, True])
    assert realised_calls([a], 1) == 3                 # t=0: accept + bonus; t=2: reject; t=3: accept, cut at the end
    assert realised_calls([a, a], 2) == 2              # t=0: accept 0, accept 1 -> 3 tokens; t=3: cut at the end
    assert realised_calls([np.zeros(5, bool)], 1) == 5


def test_row_z_and_pooling():
    iv = lambda m, h: {"mean": m, "ci_low": m - h, "ci_high": m + h}  # noqa: E731
    row = {"method": "sd", "tree": "chain:1", "predicted": iv(2.0, 0.0392), "measured": iv(1.9, 0.0392 * 3 ** 0.5)}
    assert row_z(row) == pytest.approx(-2.5, abs=1e-3)
    rec = row_z_table([row, {"method": "x", "tree": "t", "predicted": None, "measured": iv(1, 0.1)}], run="a")
    assert len(rec) == 1 and rec[0]["ratio"] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="zero-width"):
        row_z({"method": "sd", "tree": "c", "predicted": iv(1, 0), "measured": iv(1, 0)})
    with pytest.raises(ValueError, match="no prediction"):
        row_z({"method": "sd", "tree": "c", "predicted": None, "measured": iv(1, 0.1)})
    assert sign_test([-1.0] * 10)["p_value"] == pytest.approx(2 / 1024)
    assert stouffer([2.0, 2.0])["z"] == pytest.approx(2 * 2 ** 0.5)
    pooled = pool_by_group([{"run": "g", "method": "ersd", "z": 1.0}, {"run": "g", "method": "ersd", "z": 3.0},
                            {"run": "g", "method": "sd", "z": -1.0}])
    assert pooled["groups"] == {"g ersd": (2.0, 2), "g sd": (-1.0, 1)}
    assert pooled["stouffer"]["z"] == pytest.approx(1 / 2 ** 0.5)


def test_position_z_survives_noise_shared_across_sequences():
    """Race paths of many sequences keyed by one seed share the noise at each position: position_z stays N(0, 1)."""
    res = path_law_check(_run("race", n_seq=60, length=40, vocab=4, law_seed=5))
    assert abs(res["z_position"]) < Z_MAX and abs(res["z"]) < Z_MAX
    assert path_law_check(_run("draft"))["z_position"] > 6


class _StingySD:
    """Broken sd: after an acceptance, rejects anyway with probability 0.2 (and samples the target)."""

    def __new__(cls):
        from chansim.verify.sd import SD

        class Stingy(SD):
            name = "sd"

            def verify(self, p, q, drafts, noise):
                acc, tok = super().verify(p, q, drafts, noise)
                flip = (acc >= 0) & (noise.rng.random(acc.shape) < 0.2)
                resample = np.array([noise.rng.choice(p.shape[1], p=row / row.sum()) for row in p])
                return np.where(flip, -1, acc), np.where(flip, resample, tok)

        return Stingy()


def test_sd_acceptance_check_on_markov_sources(markov_tables):
    from chansim.logs.agreement import sd_acceptance_check
    from chansim.sampling.sources import MarkovSource

    target, draft = markov_tables(8, 2)
    prompts, lengths = [[i % 8] for i in range(30)], [40] * 30
    for depth in (1, 3):
        res = sd_acceptance_check(MarkovSource(target), MarkovSource(draft), prompts, lengths, depth, seed=depth)
        assert res["events"] > 500 and abs(res["z"]) < Z_MAX, res
    broken = sd_acceptance_check(MarkovSource(target), MarkovSource(draft), prompts, lengths, 1, seed=1,
                                 method=_StingySD())
    assert broken["z"] < -6
