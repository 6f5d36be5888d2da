"""Channel simulation (PFR): exactness of X_K, the exact law of K, costs and bounds.

Statistical tests accept at p-value > 1e-7 (fixed seeds), so a correct implementation
fails far less than once in 10^6 runs.
"""
import json

import numpy as np
import pytest
from scipy import stats

from chansim import channel as C
from chansim.cli import main as cli_main
from chansim.inputs.distributions import kl_divergence
from chansim.inputs.io import load_array, load_pair

ALPHA = 1e-7
P = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.0])
Q = np.array([0.3, 0.25, 0.2, 0.1, 0.05, 0.1])


def _random_pairs(seed, n):
    rng = np.random.default_rng(seed)
    for i in range(n):
        vocab = int(rng.integers(2, 60))
        conc = rng.choice([0.05, 0.3, 1.0, 5.0])
        p, q = rng.dirichlet(np.full(vocab, conc)), rng.dirichlet(np.full(vocab, conc))
        q = np.maximum(q, 1e-9)
        if i % 3 == 0:
            p[rng.integers(vocab)] = 0.0
        yield p / p.sum(), q / q.sum()


@pytest.fixture(scope="module")
def sample():
    return C.pfr_sample(P, Q, 300_000, np.random.default_rng(12345))


def test_selected_token_is_distributed_as_target(sample):
    counts = np.bincount(sample.token, minlength=6)
    assert counts[5] == 0                                   # p = 0 never selected
    assert stats.chisquare(counts[:5], P[:5] * counts.sum()).pvalue > ALPHA


def test_exact_law_of_index_matches_monte_carlo(sample):
    kmax = 40
    pmf = C.index_pmf(P, Q, kmax)
    expected = np.append(pmf, 1 - pmf.sum()) * len(sample.index)
    observed = np.bincount(np.minimum(sample.index, kmax + 1), minlength=kmax + 2)[1:]
    keep = expected > 20                                    # pool the sparse tail into the last cell
    obs, exp = observed[keep], expected[keep]
    if np.any(~keep):
        obs, exp = np.append(obs, observed[~keep].sum()), np.append(exp, expected[~keep].sum())
    assert stats.chisquare(obs, exp).pvalue > ALPHA
    st = C.mc_index_stats(sample.index, ks=(1, 2, 4), confidence=1 - ALPHA)
    exact = C.index_cdf(P, Q, [1, 2, 4])
    for a, (lo, hi) in zip(exact, st["acceptance_ci"]):
        assert lo <= a <= hi
    lo, hi = st["mean_log2_k_ci"]
    assert lo <= C.expected_log2_index(P, Q) <= hi


def test_index_equals_one_when_p_equals_q():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(50))
    s = C.pfr_sample(p, p, 5000, rng)
    assert np.all(s.index == 1)
    assert stats.chisquare(np.bincount(s.token, minlength=50)[p > 0], p[p > 0] * 5000).pvalue > ALPHA
    assert np.all(C.index_rates(p, p) < 1e-12)
    assert C.index_cdf(p, p, [1])[0] == pytest.approx(1.0, abs=1e-12)
    assert C.expected_log2_index(p, p) == pytest.approx(0.0, abs=1e-12)
    assert C.index_entropy(p, p) == pytest.approx(0.0, abs=1e-9)


def test_rates_match_quadratic_definition_and_pmf_sums_to_one():
    for p, q in _random_pairs(0, 60):
        c = C.index_rates(p, q)
        brute = np.array([np.maximum(p[y] * q / q[y] - p, 0).sum() if p[y] > 0 else 0.0 for y in range(len(p))])
        np.testing.assert_allclose(c, brute, rtol=1e-9, atol=1e-12)
        if c.max() < 300:
            k = np.arange(1, 30_000)
            pmf = C.index_pmf(p, q, len(k))
            assert pmf.sum() == pytest.approx(1.0, abs=1e-9)
            assert np.all(np.diff(pmf) <= 1e-15)            # non-increasing (mixture of geometrics)
            np.testing.assert_allclose(np.cumsum(pmf)[[0, 1, 9]], C.index_cdf(p, q, [1, 2, 10]), atol=1e-12)
            assert C.expected_log2_index(p, q) == pytest.approx((pmf * np.log2(k)).sum(), abs=1e-8)
            nz = pmf > 0
            assert C.index_entropy(p, q) == pytest.approx(-(pmf[nz] * np.log2(pmf[nz])).sum(), abs=1e-8)
            for code, length in [("gamma", C.elias_gamma_length(k)), ("delta", C.elias_delta_length(k))]:
                assert C.expected_code_length(p, q, code) == pytest.approx((pmf * length).sum(), abs=1e-8)


def test_geometric_special_case_with_huge_mean():
    # p a point mass, q uniform over V: K ~ Geometric(1/V) exactly
    vocab = 10**6
    p = np.zeros(vocab); p[3] = 1.0
    q = np.full(vocab, 1.0 / vocab)
    pi = 1.0 / vocab
    h = (-(1 - pi) * np.log2(1 - pi) - pi * np.log2(pi)) / pi
    assert C.index_entropy(p, q) == pytest.approx(h, abs=1e-8)
    # E[ln K] ~ ln V - gamma for a geometric of large mean
    assert C.expected_log2_index(p, q) == pytest.approx(np.log2(vocab) - np.euler_gamma / np.log(2), abs=1e-4)
    assert C.index_cdf(p, q, [vocab])[0] == pytest.approx(-np.expm1(vocab * np.log1p(-pi)), abs=1e-12)


def test_costs_are_ordered_and_within_li_el_gamal_bounds():
    for p, q in _random_pairs(1, 200):
        d = float(kl_divergence(p, q, base="bits"))
        e = C.expected_log2_index(p, q)
        h = C.index_entropy(p, q)
        zipf, lam = C.zipf_code_length(p, q)
        assert 0 <= e <= h + 1e-9                           # pmf non-increasing => E log K <= H(K)
        assert e <= float(C.pfr_log_bound(d)) + 1e-9
        assert h <= float(C.sfrl_entropy_bound(d)) + 1e-9
        assert h - 1e-9 <= zipf <= 2 * e + np.log2(np.pi**2 / 6) + 1e-9 and lam > 1   # optimum <= lambda = 2
        assert h - 1e-9 <= C.expected_code_length(p, q, "delta")
        acc = C.index_cdf(p, q, np.arange(0, 65))
        assert acc[0] == 0 and np.all(np.diff(acc) >= -1e-15) and acc[-1] <= 1 + 1e-12


def test_single_candidate_acceptance_sanity():
    """P(K <= 1) = sum_y p_y / (1 + C_y), in (0, 1], and at most the overlap sum_x min(p_x, q_x)."""
    for p, q in _random_pairs(2, 50):
        a1 = float(C.index_cdf(p, q, [1])[0])
        c = C.index_rates(p, q)
        assert a1 == pytest.approx(float((p / (1 + c)).sum()), abs=1e-12)
        assert 0 < a1 <= 1
        # X_1 ~ q is accepted only if it is the target's choice: P(K = 1, X = x) <= min(p_x, q_x)
        assert a1 <= np.minimum(p, q).sum() + 1e-12


def test_bad_inputs():
    with pytest.raises(ValueError, match="D\\(p\\|\\|q\\) is infinite"):
        C.pfr_sample([0.5, 0.5], [1.0, 0.0], 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        C.index_pmf([0.5, 0.5], [0.2, 0.3, 0.5], 3)
    with pytest.raises(ValueError, match="not normalised"):
        C.expected_log2_index([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="NaN or inf"):
        C.index_entropy([np.nan, 1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="1-D"):
        C.index_rates([[0.5, 0.5]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="trials must be a positive integer"):
        C.pfr_sample([0.5, 0.5], [0.5, 0.5], 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-negative integers"):
        C.index_cdf([0.5, 0.5], [0.5, 0.5], [-1])
    with pytest.raises(ValueError, match="kmax must be a positive integer"):
        C.index_pmf([0.5, 0.5], [0.5, 0.5], 0)
    with pytest.raises(ValueError, match="code must be"):
        C.expected_code_length([0.5, 0.5], [0.5, 0.5], "huffman")
    with pytest.raises(ValueError, match="1 <= k"):
        C.elias_gamma_length([0])


def test_elias_lengths_hand_values():
    k = np.array([1, 2, 3, 4, 7, 8, 15, 16, 17, 2**20])
    assert C.elias_gamma_length(k).tolist() == [1, 3, 3, 5, 5, 7, 7, 9, 9, 41]
    assert C.elias_delta_length(k).tolist() == [1, 4, 4, 5, 5, 8, 8, 9, 9, 29]
    # Kraft: both codes are prefix codes
    ks = np.arange(1, 2**16)
    assert (2.0 ** -C.elias_gamma_length(ks)).sum() <= 1 and (2.0 ** -C.elias_delta_length(ks)).sum() <= 1


def test_sampler_is_seeded_and_summary_consistent():
    a = C.pfr_sample(P, Q, 2000, np.random.default_rng(5))
    b = C.pfr_sample(P, Q, 2000, np.random.default_rng(5))
    assert np.array_equal(a.index, b.index) and np.array_equal(a.token, b.token)
    s = C.channel_summary(P, Q, ks=(1, 4), trials=2000, seed=5)
    assert s.kl_bits == pytest.approx(float(kl_divergence(P, Q, base="bits")))
    assert s.expected_log2_k <= s.pfr_bound and s.entropy_k <= s.sfrl_bound
    assert s.mc["trials"] == 2000 and len(s.mc["acceptance"]) == 2
    json.dumps(s.as_dict())                                  # serialisable


# ----------------------------------------------------------------------------- io + CLI
def test_load_array_formats_and_errors(tmp_path):
    v = np.array([0.2, 0.3, 0.5])
    np.save(tmp_path / "a.npy", v)
    np.savez(tmp_path / "a.npz", probs=v)
    np.savez(tmp_path / "two.npz", p=v, q=v)
    np.savetxt(tmp_path / "a.csv", v[None], delimiter=",")
    (tmp_path / "a.json").write_text(json.dumps({"probs": v.tolist()}))
    for name in ("a.npy", "a.npz", "a.csv"):
        np.testing.assert_array_equal(load_array(tmp_path / name, "x").ravel(), v)
    np.testing.assert_array_equal(load_array(tmp_path / "a.json", "x", key="probs"), v)
    np.testing.assert_array_equal(load_array(tmp_path / "two.npz", "x", key="q"), v)
    with pytest.raises(FileNotFoundError, match="x: no such file"):
        load_array(tmp_path / "missing.npy", "x")
    with pytest.raises(ValueError, match="holds arrays"):
        load_array(tmp_path / "two.npz", "x")
    with pytest.raises(ValueError, match="JSON object with keys"):
        load_array(tmp_path / "a.json", "x")
    (tmp_path / "bad.npy").write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match="x: .*bad.npy"):
        load_array(tmp_path / "bad.npy", "x")
    (tmp_path / "bad.csv").write_text("0.1,abc\n")
    with pytest.raises(ValueError, match="cannot read numbers"):
        load_array(tmp_path / "bad.csv", "x")
    (tmp_path / "e.json").write_text("[]")
    with pytest.raises(ValueError, match="non-empty array"):
        load_array(tmp_path / "e.json", "x")
    (tmp_path / "a.txt").write_text("1")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_array(tmp_path / "a.txt", "x")


def test_load_pair_validates(tmp_path):
    np.save(tmp_path / "p.npy", [0.2, 0.3, 0.5])
    np.save(tmp_path / "u.npy", [0.2, 0.3, 0.6])
    np.save(tmp_path / "v4.npy", [0.25] * 4)
    np.save(tmp_path / "z.npy", [0.0, 1.0, np.nan])
    p, q = load_pair(tmp_path / "p.npy", tmp_path / "p.npy")
    assert p.tolist() == [0.2, 0.3, 0.5]
    with pytest.raises(ValueError, match="not normalised"):
        load_pair(tmp_path / "p.npy", tmp_path / "u.npy")
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        load_pair(tmp_path / "p.npy", tmp_path / "v4.npy")
    with pytest.raises(ValueError, match="temperature applies to logits only"):
        load_pair(tmp_path / "p.npy", tmp_path / "p.npy", temperature=2.0)
    with pytest.raises(ValueError, match="NaN"):
        load_pair(tmp_path / "z.npy", tmp_path / "p.npy", logits=True)
    p, q = load_pair(tmp_path / "u.npy", tmp_path / "p.npy", logits=True, temperature=0.5)
    assert p.sum() == pytest.approx(1.0) and np.argmax(p) == 2


def test_cli_channel(tmp_path, capsys):
    np.save(tmp_path / "p.npy", P)
    np.save(tmp_path / "q.npy", Q)
    assert cli_main(["channel", "--p", str(tmp_path / "p.npy"), "--q", str(tmp_path / "q.npy"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["expected_log2_k"] == pytest.approx(C.expected_log2_index(P, Q))
    assert cli_main(["channel", "--p", str(tmp_path / "p.npy"), "--q", str(tmp_path / "q.npy"),
                     "--trials", "500", "--ks", "1,3"]) == 0
    assert "P(K <= k)" in capsys.readouterr().out
    assert cli_main(["channel", "--p", str(tmp_path / "p.npy"), "--q", str(tmp_path / "nope.npy")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_first_pfr_candidate_is_accepted_as_often_as_the_first_race_token():
    # P(K = 1) = sum_y p_y / (1 + C_y) = alpha_ER (docs/theory.md section 0)
    from chansim.channel import index_pmf
    from chansim.inputs.distributions import synthetic_pair
    from chansim.sampling.races import er_acceptance

    for seed in range(10):
        p, q = synthetic_pair("dirichlet", 12, 0.7, seed=seed)
        assert abs(index_pmf(p, q, 1)[0] - er_acceptance(p, q)) < 1e-12


def test_archive_members_are_chosen_with_path_colon_key(tmp_path):
    np.savez(tmp_path / "pair.npz", p=[0.5, 0.5], q=[0.9, 0.1])
    with pytest.raises(ValueError, match="pair.npz:KEY"):
        load_array(tmp_path / "pair.npz", "--p")
    assert load_array(f"{tmp_path / 'pair.npz'}:q", "--q").tolist() == [0.9, 0.1]
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(ValueError, match="bad.npy"):
        load_array(tmp_path / "bad.npy", "--p")


def test_each_public_function_checks_the_pair_once(monkeypatch):
    """Validation once at the door: the costs behind channel_summary take the checked arrays."""
    import chansim.inputs.distributions as D

    calls = []
    check = D.check_pair
    monkeypatch.setattr(D, "check_pair", lambda *a, **k: calls.append(1) or check(*a, **k))
    p, q = P, np.where(Q > 0, Q, 0.0)
    for run in (lambda: C.channel_summary(p, q, trials=50), lambda: C.index_entropy(p, q),
                lambda: C.expected_code_length(p, q), lambda: C.zipf_code_length(p, q), lambda: C.index_pmf(p, q, 3)):
        calls.clear()
        run()
        assert len(calls) == 1
    calls.clear()
    C.expected_log2_index(p, q, validate=False)
    assert not calls
