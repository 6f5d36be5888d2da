"""Regression tests for every reproducer of the hostile-input report (issue 13) and tensor inputs (issue 12.3).

Each test is named after what was seen; each now ends in a clear error, a correct result or a warning.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from chansim.cli import main
from chansim.inputs.distributions import dtype_atol, softmax
from chansim.inputs.io import InputWarning, load_array, load_pair
from chansim.logs.format import LogError, read_log, write_log
from chansim.llm.logging_run import race_sample

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.2, 0.3, 0.5])


@pytest.fixture
def pq(tmp_path):
    np.save(tmp_path / "p.npy", P)
    np.save(tmp_path / "q.npy", Q)
    return tmp_path / "p.npy", tmp_path / "q.npy"


def _err_line(capsys):
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith("chansim: ")]  # diagnostics
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# ----------------------------------------------------------------------------- silent wrong results
def _race_log(path, swap=False, seed=4, n_seq=3, length=40, vocab=50, dtype=None):
    """A keyed-race log as `chansim llm log` writes it, from synthetic logits (optionally target/draft swapped)."""
    rng = np.random.default_rng(seed)
    prompts, tokens, tl, dl = [], [], [], []
    for i in range(n_seq):
        prompt = [int(v) for v in rng.integers(0, vocab, size=3 + i)]
        zt = 2.0 * rng.standard_normal((length, vocab))
        lt, lq = np.log(softmax(zt)), np.log(softmax(zt + rng.standard_normal((length, vocab))))
        tokens.append([race_sample(lt[t], seed, len(prompt) + t) for t in range(length)])
        prompts.append(prompt)
        tl.append(lq if swap else lt)
        dl.append(lt if swap else lq)
    meta = {"seed": seed, "temperature": 1.0, "sampling": "keyed race on the target (synthetic test log)"}
    return write_log(path, prompts=prompts, tokens=tokens, target_log_probs=tl, draft_log_probs=dl, metadata=meta)


def test_swapped_target_and_draft_log_probs_refused(tmp_path, capsys):
    good = read_log(_race_log(tmp_path / "good.npz"))
    assert good.n_sequences == 3
    path = _race_log(tmp_path / "swapped.npz", swap=True)
    with pytest.raises(LogError, match="look swapped"):
        read_log(path)
    assert main(["bound", "--log", str(path), "--k", "1"]) == 2
    assert "look swapped" in _err_line(capsys)


def test_mismatched_log_pair_refused(tmp_path):
    path = _race_log(tmp_path / "a.npz")
    arrays = dict(np.load(path))
    meta = json.loads(str(arrays["metadata"]))
    meta["seed"] = 5                                         # tokens were drawn with seed 4
    arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "b.npz", **arrays)
    with pytest.raises(LogError, match="do not belong to these tokens"):
        read_log(tmp_path / "b.npz")


def test_complex_npy_refused_by_bound_and_simulate(tmp_path, pq, capsys):
    np.save(tmp_path / "c.npy", P + 0.1j)
    assert main(["bound", "--p", str(tmp_path / "c.npy"), "--q", str(pq[1]), "--k", "1"]) == 2
    assert "complex" in _err_line(capsys)
    assert main(["simulate", "--method", "sd", "--p", str(tmp_path / "c.npy"), "--q", str(pq[1]),
                 "--tree", "chain:1", "--calls", "100"]) == 2
    assert "complex" in _err_line(capsys)


def test_logits_flag_on_probabilities_warns(pq, capsys):
    with pytest.warns(InputWarning, match="looks like probabilities"):
        load_pair(*pq, logits=True)
    assert main(["bound", "--p", str(pq[0]), "--q", str(pq[1]), "--logits", "--k", "1", "--json"]) == 0
    err = capsys.readouterr().err
    assert "chansim: warning: --logits was given but the target file looks like probabilities" in err


@pytest.mark.parametrize("text, problem", [('[0.5, "0.5"]', "string"), ("[true, false]", "boolean"),
                                           ('{"a": {"b": 1}}', "object"), ('{"a": [{"x": 1}, {"x": 2}]}', "object"),
                                           ("[0.5, null]", "null"), ("[[0.5, 0.5], [1.0]]", "ragged")])
def test_json_non_numbers_refused(tmp_path, pq, capsys, text, problem):
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(ValueError, match=problem):
        load_array(str(tmp_path / "bad.json") + (":a" if text.startswith("{") else ""), "p")
    arg = str(tmp_path / "bad.json") + (":a" if text.startswith("{") else "")
    assert main(["bound", "--p", arg, "--q", str(pq[1]), "--k", "1"]) == 2
    assert problem in _err_line(capsys)


def test_k_with_empty_item_refused(pq, capsys):
    assert main(["bound", "--p", str(pq[0]), "--q", str(pq[1]), "--k", "1,,4"]) == 2
    assert "--k must be comma-separated positive integers" in _err_line(capsys)


@pytest.mark.parametrize("rank_probs", [[-0.6, 1.6], [float("nan"), 0.5], [0.7, 0.7]])
def test_best_rank_set_tree_rejects_invalid_rank_law(rank_probs):
    from chansim import theory

    with pytest.raises(ValueError, match="rank_probs"):
        theory.best_rank_set_tree(rank_probs, 2)


def test_simulate_interval_never_below_one_token_and_flags_small_sample(pq, capsys):
    assert main(["simulate", "--method", "sd", "--p", str(pq[0]), "--q", str(pq[1]), "--tree", "chain:4",
                 "--calls", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    tpc = out["tokens_per_call"]
    assert 1.0 <= tpc["ci_low"] <= tpc["mean"] <= tpc["ci_high"] <= 5.0
    assert tpc["small_sample"] is True
    assert main(["simulate", "--method", "sd", "--p", str(pq[0]), "--q", str(pq[1]), "--tree", "chain:4",
                 "--calls", "10"]) == 0
    assert "warning: small sample" in capsys.readouterr().out


def test_bootstrap_from_one_sequence_flagged_small_sample(tmp_path, capsys):
    from chansim.logs.predict import predict_from_log

    path = _race_log(tmp_path / "one.npz", n_seq=1, length=12, vocab=20)
    pred = predict_from_log(path, "sd", "chain:2")
    assert pred["small_sample"] is True and 1.0 <= pred["ci_low"] <= pred["ci_high"] <= 3.0
    assert main(["bound", "--log", str(path), "--k", "2", "--method", "sd", "--trials", "20"]) == 0
    assert "warning: small sample (1 sequence(s)" in capsys.readouterr().out


def test_validate_rows_clipped_and_flagged():
    from chansim.llm.validate import _feasible_row

    row = {"predicted": {"mean": 1.2, "ci_low": 0.9, "ci_high": 3.4},
           "measured": {"mean": 1.3, "ci_low": 1.3, "ci_high": 1.3}, "target_calls": 12}
    _feasible_row(row, max_tokens=3, n_sequences=1)
    assert row["predicted"]["ci_low"] == 1.0 and row["predicted"]["ci_high"] == 3.0
    assert row["small_sample"] is True


# ----------------------------------------------------------------------------- clobbered or misnamed files
def test_emit_tokens_over_input_refused(pq, capsys):
    before = pq[0].read_bytes()
    assert main(["simulate", "--method", "sd", "--p", str(pq[0]), "--q", str(pq[1]), "--tree", "chain:2",
                 "--calls", "50", "--emit-tokens", str(pq[0])]) == 2
    assert "refusing to write over an input" in _err_line(capsys)
    assert pq[0].read_bytes() == before


def test_emit_tokens_existing_needs_force_and_directory_refused(tmp_path, pq, capsys):
    args = ["simulate", "--method", "sd", "--p", str(pq[0]), "--q", str(pq[1]), "--tree", "chain:2", "--calls", "50"]
    assert main(args + ["--emit-tokens", str(tmp_path)]) == 2
    assert "is a directory" in _err_line(capsys)
    assert main(args + ["--emit-tokens", str(tmp_path / "tok")]) == 2
    assert "must end in .npy" in _err_line(capsys)
    out = tmp_path / "tok.npy"
    assert main(args + ["--emit-tokens", str(out)]) == 0
    capsys.readouterr()
    assert main(args + ["--emit-tokens", str(out)]) == 2
    assert "already exists; pass --force" in _err_line(capsys)
    assert main(args + ["--emit-tokens", str(out), "--force"]) == 0
    assert np.load(out).ndim == 1
    assert not list(tmp_path.glob(".*part*"))                 # no temporary file left behind


def test_bound_plot_written_under_exact_name(tmp_path, pq, capsys):
    args = ["bound", "--p", str(pq[0]), "--q", str(pq[1]), "--k", "1,2"]
    assert main(args + ["--plot", str(tmp_path)]) == 2
    assert "is a directory" in _err_line(capsys)
    assert main(args + ["--plot", str(tmp_path / "fig.png")]) == 0
    captured = capsys.readouterr()
    assert f"plot written to {tmp_path / 'fig.png'}" in captured.out + captured.err
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args + ["--plot", str(pq[0])]) == 2                # an input, and not an image name
    assert pq[0].read_bytes()[:6] == b"\x93NUMPY"


def test_ctrl_c_during_figures_leaves_visibly_incomplete_set(tmp_path, monkeypatch, capsys):
    import chansim.figures.fig1_trees as fig1

    def interrupted(data):
        raise KeyboardInterrupt

    monkeypatch.setattr(fig1, "plot", interrupted)
    out = tmp_path / "figs"
    assert main(["figures", "--only", "fig1_trees", "--out", str(out), "--jobs", "1"]) == 130
    assert _err_line(capsys) == "chansim figures: interrupted"
    assert (out / "fig1_trees.json").exists()                # data written, then interrupted while plotting
    assert not (out / "fig1_trees.txt").exists() and not (out / "manifest.json").exists()
    assert not list(out.glob(".*part*"))
    monkeypatch.undo()
    assert main(["figures", "--only", "fig1_trees", "--out", str(out), "--jobs", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["figures"]["fig1_trees"][-1] == "fig1_trees.txt"


# ----------------------------------------------------------------------------- tracebacks instead of errors
def test_deeply_nested_json_refused(tmp_path, pq, capsys):
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    assert main(["bound", "--p", str(tmp_path / "deep.json"), "--q", str(pq[1]), "--k", "1"]) == 2
    assert "nested" in _err_line(capsys)


def test_figures_out_naming_a_file_refused(pq, capsys):
    assert main(["figures", "--only", "fig1_trees", "--out", str(pq[0])]) == 2
    assert "is a file" in _err_line(capsys)


def test_bound_json_into_closed_pipe_is_quiet(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "p.npy", rng.dirichlet(np.ones(8), size=30))    # ~22 kB of JSON:
    np.save(tmp_path / "q.npy", rng.dirichlet(np.ones(8), size=30))     # more than the pipe's buffer
    proc = subprocess.Popen([sys.executable, "-m", "chansim.cli", "bound", "--p", str(tmp_path / "p.npy"), "--q",
                             str(tmp_path / "q.npy"), "--k", "1,2", "--json", "--per-position", "--jobs", "1",
                             "--method", "sd"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()                                      # `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_ctrl_c_exits_130_with_one_line(pq, monkeypatch, capsys):
    import chansim.commands.bound as bound

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bound, "run", interrupted)
    assert main(["bound", "--p", str(pq[0]), "--q", str(pq[1])]) == 130
    assert _err_line(capsys) == "chansim bound: interrupted"


def test_renewal_constant_needs_a_rank_law():
    from chansim import theory

    with pytest.raises(ValueError, match="expected a RankLaw"):
        theory.renewal_constant([0.6, 0.4])


def test_er_acceptance_on_tensor_with_grad():
    torch = pytest.importorskip("torch")
    from chansim.sampling.races import er_acceptance

    p = torch.tensor([0.5, 0.3, 0.2], requires_grad=True)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="not normalised"):     # bfloat16 rounding of q: 1e-6 is too strict
        er_acceptance(p, q)
    assert float(er_acceptance(p, torch.tensor([0.2, 0.3, 0.5]))) == pytest.approx(
        float(er_acceptance(P, Q)), abs=1e-7)
    assert p.requires_grad                                    # the caller's tensor is untouched


def test_er_acceptance_shape_mismatch_named():
    from chansim.sampling.races import er_acceptance

    with pytest.raises(ValueError, match="vocabulary mismatch"):
        er_acceptance(P, Q[:2])


# ----------------------------------------------------------------------------- runaway time or memory
@pytest.mark.parametrize("tree, calls, what", [("branch:100000,100000", "10", "memory"),
                                              ("chain:1000000", "10", "run time"),
                                              ("chain:4", "100000000000", "run time")])
def test_simulate_size_guard(pq, capsys, tree, calls, what):
    assert main(["simulate", "--method", "sd", "--p", str(pq[0]), "--q", str(pq[1]), "--tree", tree,
                 "--calls", calls]) == 2
    line = _err_line(capsys)
    assert what in line and "--force" in line


def test_bound_k_1000000000_refused_before_allocating(pq, capsys):
    """``chansim bound --k 1000000000`` once ran 150 s into 15 GB before a MemoryError."""
    assert main(["bound", "--p", str(pq[0]), "--q", str(pq[1]), "--k", "1000000000"]) == 2
    line = _err_line(capsys)
    assert "guarded budget" in line and "GiB" in line and "--force" in line


@pytest.mark.parametrize("k", ["2000", "20000"])
def test_bound_large_k_small_vocab_finishes(pq, capsys, k):
    """``--k 2000`` took over 60 s and ``--k 20000`` 3.7 GB (V = 8): now the O(k) optimal-tree search."""
    assert main(["bound", "--p", str(pq[0]), "--q", str(pq[1]), "--k", k, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["methods"]["ersd"]["tokens_per_call"][0] <= int(k) + 1


def test_float16_log_upcast_to_float64_accepted(tmp_path):
    path = _race_log(tmp_path / "run.npz")
    arrays = dict(np.load(path))
    arrays["target_log_probs"] = arrays["target_log_probs"].astype(np.float64)
    arrays["draft_log_probs"] = arrays["draft_log_probs"].astype(np.float32)
    np.savez(tmp_path / "up.npz", **arrays)
    up, orig = read_log(tmp_path / "up.npz"), read_log(path)
    assert up.target_log_probs.dtype == np.float16
    np.testing.assert_array_equal(up.sequence(1)[0], orig.sequence(1)[0])


# ----------------------------------------------------------------------------- model loading
def test_model_directory_with_pickle_weights_refused_without_unpickling(tmp_path):
    torch = pytest.importorskip("torch")
    from chansim.llm.models import load_model

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    torch.save({"weight": Payload()}, d / "pytorch_model.bin", _use_new_zipfile_serialization=True)
    with pytest.raises(ValueError, match="pickle-based weights"):
        load_model(d)
    assert not marker.exists()
    # the same pickle given as a .pt input file is refused too (weights_only loading)
    torch.save(Payload(), tmp_path / "p.pt")
    with pytest.raises(ValueError, match="weights_only"):
        load_array(tmp_path / "p.pt", "p")
    assert not marker.exists()


# ----------------------------------------------------------------------------- issue 12.3: tensors as inputs
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_pt_and_safetensors_tensor_inputs(tmp_path, dtype):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    tdtype = getattr(torch, dtype)
    p = torch.softmax(torch.randn(4, 300, generator=torch.Generator().manual_seed(1)), -1).to(tdtype)
    q = torch.softmax(torch.randn(4, 300, generator=torch.Generator().manual_seed(2)), -1).to(tdtype)
    p.requires_grad_(True)
    torch.save(p, tmp_path / "p.pt")
    torch.save({"probs": q}, tmp_path / "q.pt")
    save_file({"p": p.detach(), "q": q}, tmp_path / "pq.safetensors")
    a, b = load_pair(tmp_path / "p.pt", tmp_path / "q.pt")
    raw = p.detach().float().numpy().astype(np.float64)     # rows within the dtype's tolerance, renormalised
    np.testing.assert_allclose(a, raw / raw.sum(-1, keepdims=True), rtol=0, atol=1e-15)
    assert p.requires_grad
    c, d = load_pair(str(tmp_path / "pq.safetensors") + ":p", str(tmp_path / "pq.safetensors") + ":q")
    np.testing.assert_array_equal(c, a)
    np.testing.assert_array_equal(d, b)


def test_float32_softmax_over_49k_tokens_passes(tmp_path, pq, capsys):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(49152)).astype(np.float32)
    p[0] += np.float32(1.2e-5)                               # as seen: a float32 softmax off by 1.2e-5
    assert 1.2e-5 < dtype_atol("float32", 49152)
    np.save(tmp_path / "p32.npy", p)
    np.save(tmp_path / "q32.npy", p)
    load_pair(tmp_path / "p32.npy", tmp_path / "q32.npy")
    with pytest.raises(ValueError, match="tolerance 1e-06"):   # the same values as float64 need --atol
        np.save(tmp_path / "p64.npy", p.astype(np.float64))
        load_pair(tmp_path / "p64.npy", tmp_path / "p64.npy")
    load_pair(tmp_path / "p64.npy", tmp_path / "p64.npy", atol=1e-4)
    assert main(["bound", "--p", str(tmp_path / "p64.npy"), "--q", str(tmp_path / "p64.npy"), "--k", "1",
                 "--method", "sd", "--atol", "1e-4", "--json"]) == 0


def test_negative_values_hint_logits(tmp_path, pq, capsys):
    np.save(tmp_path / "z.npy", np.array([-1.0, 0.5, 2.0]))
    assert main(["bound", "--p", str(tmp_path / "z.npy"), "--q", str(pq[1]), "--k", "1"]) == 2
    assert "pass --logits" in _err_line(capsys)
