"""Property-based hostile-input battery over the loaders and every CLI command (issue 13, item 5; issue 22, item 5).

Random malformed arrays, files and options are thrown at :func:`chansim.inputs.io.load_array` /
:func:`chansim.inputs.io.load_pair`, :func:`chansim.logs.format.read_log` and ``chansim bound | simulate |
channel | figures | llm log | llm validate``. Properties, for every example:

* no traceback: the loader raises ``ValueError``/``FileNotFoundError`` only; the CLI returns 0 or 2
  (argparse's own usage errors exit 2 too) and never lets another exception escape;
* exit 2 comes with one line on stderr naming the problem (argparse: a usage line, then one);
* no silent wrong result: exit 0 (or a loaded array) only when the inputs are independently valid
  probability vectors of a real numeric dtype (or logits with ``--logits``);
* no changed input: every input file has the same bytes afterwards.

Every outcome is classified (:data:`CLASSES`): ``clean error`` (a ``ValueError``-like refusal, or
exit 1/2 with one line on stderr), ``valid`` (accepted, and independently checked where a check
exists), ``traceback`` (anything else escapes, or a traceback is printed), ``silent`` (accepted
although wrong: invalid input, a wrong file mode, a result that cannot be), ``clobber`` (a file that
must not change did), ``runaway`` (still running after :data:`BUDGET_S`). The battery fails on the
last four. Issue 22 adds the fixed reproducers (``test_fixed_reproducer``, one per case the issue
names), signals in the middle of every kind of write (``test_signal_during_write``) and a sweep
of the public functions (``test_public_api_hostile``).

Sized to run in a few minutes on one core (``max_examples`` below); the counts are printed
at the end of the module (``pytest -s``).
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from chansim.cli import main
from chansim.inputs.distributions import dtype_atol
from chansim.inputs.io import load_array, load_pair
from chansim.logs.format import read_log

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
COUNTS = {"inputs": 0, "accepted": 0, "tracebacks": 0, "silent_wrong": 0, "clobbered": 0}
#: outcome classes of every input tried (module docstring)
CLASS_NAMES = ("clean error", "valid", "traceback", "silent", "clobber", "runaway")
CLASSES: collections.Counter = collections.Counter({c: 0 for c in CLASS_NAMES})
#: seconds one in-process CLI run may take before it is a runaway
BUDGET_S = 90
_START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]


class Runaway(BaseException):
    """Raised by the budget alarm; a BaseException so that no ``except Exception`` in chansim hides it."""


@contextlib.contextmanager
def _budget(seconds: float = BUDGET_S):
    """Raise :class:`Runaway` in the main thread after ``seconds`` (SIGALRM)."""
    def alarm(signum, frame):
        raise Runaway()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _silent(message: str, was: str = "valid"):
    """Reclassify the current example (counted as ``was``) as silently wrong, and fail."""
    CLASSES[was] -= 1
    CLASSES["silent"] += 1
    COUNTS["silent_wrong"] += 1
    raise AssertionError(message)

# ----------------------------------------------------------------------------- strategies
finite = st.floats(min_value=-5, max_value=5, allow_nan=False)
special = st.sampled_from([np.nan, np.inf, -np.inf, -0.0, 1e308, -1e-300, 0.5, 1.0, 0.0])
number = st.one_of(finite, special)


@st.composite
def arrays(draw):
    """A hostile numpy array: odd dtypes and shapes, specials, sometimes a valid distribution."""
    kind = draw(st.sampled_from(["prob", "prob", "float", "int", "bool", "complex", "str", "f16", "empty", "scalar",
                                 "3d"]))
    v = draw(st.integers(1, 6))
    if kind == "prob":
        rows = draw(st.sampled_from([(), (2,)]))
        w = np.array(draw(st.lists(st.floats(0.01, 1), min_size=v * int(np.prod(rows or (1,))),
                                   max_size=v * int(np.prod(rows or (1,))))), dtype=np.float64)
        w = w.reshape(rows + (v,))
        return w / w.sum(-1, keepdims=True)
    if kind == "float":
        return np.array(draw(st.lists(number, min_size=v, max_size=v)))
    if kind == "int":
        return np.array(draw(st.lists(st.integers(-3, 3), min_size=v, max_size=v)), dtype=np.int64)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=v, max_size=v)))
    if kind == "complex":
        return np.full(v, 1.0 / v) + 0.1j
    if kind == "str":
        return np.array([str(1.0 / v)] * v)
    if kind == "f16":
        return (np.full(v, 1.0 / v)).astype(np.float16)
    if kind == "empty":
        return np.zeros((0,))
    if kind == "scalar":
        return np.array(0.5)
    return np.full((2, 2, v), 1.0 / v)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | finite | st.text(max_size=4),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                           max_leaves=12)


@st.composite
def files(draw, stem):
    """(name, bytes or array) of one hostile input file."""
    ext = draw(st.sampled_from([".npy", ".npy", ".json", ".csv", ".npz", ".pt", ".safetensors", ".txt", ""]))
    how = draw(st.sampled_from(["array", "array", "bytes", "json"]))
    if how == "bytes" or ext in (".txt", ""):
        return stem + ext, draw(st.binary(max_size=64))
    if how == "json" or ext == ".json":
        if draw(st.booleans()):
            return stem + ".json", json.dumps(draw(json_values)).encode()
        return stem + ".json", json.dumps(draw(arrays()).tolist(), default=str).encode()
    return stem + ext, draw(arrays())


@st.composite
def pairs(draw):
    """Two input files: independent hostile files, or a near-valid pair in one format (tolerance edges)."""
    if draw(st.booleans()):
        return draw(files("p")), draw(files("q"))
    ext = draw(st.sampled_from([".npy", ".json", ".csv", ".pt", ".safetensors", ".npz"]))
    shape = draw(st.sampled_from([(2,), (5,), (3, 4)]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    p, q = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1] or None), rng.dirichlet(np.ones(shape[-1]),
                                                                                   size=shape[:-1] or None)
    dtype = draw(st.sampled_from(["float64", "float32", "float16"])) if ext in (".npy", ".pt", ".npz") else "float64"
    change = draw(st.sampled_from(["none", "scale1e-7", "scale1e-4", "scale1e-2", "negative", "nan", "row"]))
    if change.startswith("scale"):
        p = p * (1 + float(change[5:]))
    elif change == "negative":
        p.flat[0] = -p.flat[0]
    elif change == "nan":
        p.flat[0] = np.nan
    elif change == "row":
        q = q[..., :-1] / q[..., :-1].sum(-1, keepdims=True)
    return ("p" + ext, p.astype(dtype)), ("q" + ext, q.astype(dtype))


def _write(directory: Path, name: str, content) -> Path:
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
        return path
    arr = content
    if path.suffix == ".npy":
        np.save(path, arr, allow_pickle=False) if arr.dtype.kind != "O" else np.save(path, arr, allow_pickle=True)
    elif path.suffix == ".npz":
        np.savez(path, a=arr)
    elif path.suffix == ".csv":
        if arr.size == 0 or arr.ndim == 0 or arr.ndim > 2:
            path.write_text(str(arr.tolist()))
        else:
            np.savetxt(path, arr.reshape(-1, arr.shape[-1]), delimiter=",", fmt="%s")
    elif path.suffix in (".pt", ".safetensors"):
        import torch

        if arr.dtype.kind in "U" or (arr.dtype.kind == "c" and path.suffix == ".safetensors"):
            path.write_bytes(b"not a tensor")
            return path
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if path.suffix == ".pt":
            torch.save(t, path)
        else:
            from safetensors.torch import save_file

            save_file({"a": t.contiguous()}, path)
    else:
        path.write_text(json.dumps(arr.tolist(), default=str))
    return path


def _digest(paths) -> dict:
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths if Path(p).is_file()}


def _independently_valid(path: Path) -> np.ndarray | None:
    """The probability array in ``path`` by an independent reading, or None when it is not one."""
    try:
        if path.suffix == ".npy":
            raw = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                raw = z[z.files[0]] if len(z.files) == 1 else None
        elif path.suffix == ".json":
            obj = json.loads(path.read_text())
            flat = np.array(obj, dtype=object).ravel() if isinstance(obj, list) else np.array([obj], dtype=object)
            if not all(type(x) in (int, float) for x in flat):
                return None
            raw = np.array(obj, dtype=np.float64)
        elif path.suffix == ".csv":
            raw = np.loadtxt(path, delimiter=",", ndmin=1)
        elif path.suffix in (".pt", ".safetensors"):
            import torch

            if path.suffix == ".pt":
                raw = torch.load(path, weights_only=True)
            else:
                from safetensors.torch import load_file

                raw = load_file(path)["a"]
            dtype = str(raw.dtype).replace("torch.", "")
            if raw.is_complex() or raw.dtype == torch.bool:
                return None
            arr = raw.float().numpy().astype(np.float64)
            return arr if _valid(arr, dtype) else None
        else:
            return None
    except Exception:  # noqa: BLE001 - anything unreadable is "not valid"
        return None
    if raw is None or raw.dtype.kind not in "fiu":
        return None
    arr = raw.astype(np.float64)
    return arr if _valid(arr, str(raw.dtype)) else None


def _valid(arr, dtype) -> bool:
    return bool(arr.ndim >= 1 and arr.size and np.all(np.isfinite(arr)) and np.all(arr >= 0)
                and np.all(np.abs(arr.sum(-1) - 1) <= dtype_atol(dtype, arr.shape[-1])))


def _run_cli(argv, inputs, budget: float = BUDGET_S):
    """main(argv) with the battery's properties checked and its outcome classified; returns (rc, stderr).

    ``inputs``: files that must keep their bytes (inputs, and existing files the run must not replace).
    """
    COUNTS["inputs"] += 1
    before = _digest(inputs)
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), _budget(budget):
            rc = main(argv)
    except SystemExit as exc:                                # argparse usage errors
        rc = exc.code
        assert rc == 2, f"{argv}: SystemExit({rc})"
        assert err.getvalue().strip().splitlines()[-1].startswith("chansim"), err.getvalue()
        rc = "usage"
    except Runaway:
        CLASSES["runaway"] += 1
        raise AssertionError(f"{argv} still running after {budget:g} s") from None
    except BaseException as exc:  # noqa: BLE001 - the property: nothing escapes
        COUNTS["tracebacks"] += 1
        CLASSES["traceback"] += 1
        raise AssertionError(f"{argv} raised {type(exc).__name__}: {exc}") from exc
    if _digest(inputs) != before:
        COUNTS["clobbered"] += 1
        CLASSES["clobber"] += 1
        raise AssertionError(f"{argv} changed a file it must not change")
    if rc in (1, 2):
        lines = [ln for ln in err.getvalue().strip().splitlines() if not ln.startswith("chansim: ")]  # diagnostics
        if not (len(lines) == 1 and lines[0].startswith("chansim") and "Traceback" not in err.getvalue()):
            CLASSES["traceback"] += 1
            raise AssertionError(f"{argv}: not one error line: {err.getvalue()}")
    elif rc not in (0, "usage"):
        CLASSES["traceback"] += 1
        raise AssertionError(f"{argv}: exit {rc}")
    COUNTS["accepted"] += rc == 0
    CLASSES["valid" if rc == 0 else "clean error"] += 1
    return rc, err.getvalue()


hostile_ints = st.sampled_from(["1", "3", "50"] * 4 + ["0", "-1", "1", "3", "abc", "", "2.5", "nan", "1e3", "99999999999999999999"])
hostile_floats = st.sampled_from(["0", "-1", "0.5", "1", "nan", "inf", "-inf", "1e309", "abc", "", "2"])
hostile_ks = st.sampled_from(["1", "1,2", "1", "1,2", "2", "1", "1,2", "2", "1", "1,2", "2", "1,,4", "0", "-2", "a", "", " ", "1,", "2,x", "3.5"])
hostile_trees = st.sampled_from(["chain:1", "chain:3", "batch:2", "branch:2,1", "seq:2x2"] * 3 + [ "chain:-1", "chain:",
                                 "branch:", "branch:100000,100000", "chain:1000000", "tree:3", "seq:2", "batch:x",
                                 "branch:3,0", "seq:0x0"])


# ----------------------------------------------------------------------------- loaders
@settings(max_examples=200, **SETTINGS)
@given(spec=files("p"), key=st.sampled_from([None, "a", "zz"]))
def test_loader_refuses_malformed_files(spec, key):
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d), *spec)
        before = _digest([path])
        COUNTS["inputs"] += 1
        try:
            arr = load_array(path, "p", key)
        except (ValueError, FileNotFoundError) as err:
            assert str(err).startswith("p:"), err
            arr = None
        except BaseException as exc:  # noqa: BLE001
            COUNTS["tracebacks"] += 1
            CLASSES["traceback"] += 1
            raise AssertionError(f"{spec[0]}: {type(exc).__name__}: {exc}") from exc
        CLASSES["clean error" if arr is None else "valid"] += 1
        if arr is not None:
            assert arr.dtype == np.float64 and arr.ndim >= 1 and arr.size
            assert np.isrealobj(arr)
        try:
            p, _ = load_pair(path, path, key=key)
        except (ValueError, FileNotFoundError):
            p = None
        if p is not None and key is None and path.suffix != ".npz" and _independently_valid(path) is None:
            _silent(f"{spec[0]} accepted as probabilities but is not valid", "valid" if arr is not None else
                    "clean error")
        assert _digest([path]) == before


@settings(max_examples=60, **SETTINGS)
@given(blob=st.binary(max_size=200), cut=st.integers(0, 2000))
def test_log_reader_refuses_corrupt_logs(blob, cut):
    from chansim.logs.format import LogError

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.npz"
        path.write_bytes(b"PK\x03\x04" + blob if cut % 2 else blob)
        COUNTS["inputs"] += 1
        with pytest.raises((LogError, FileNotFoundError)):
            read_log(path)
        CLASSES["clean error"] += 1


# ----------------------------------------------------------------------------- CLI commands
@settings(max_examples=150, **SETTINGS)
@given(pq=pairs(), k=hostile_ks, logits=st.booleans(), extra=st.sampled_from(
    [[]] * 12 + [[], ["--atol", "abc"], ["--atol", "1e-3"], ["--atol", "-1"], ["--temperature", "0"], ["--tree", "chain"],
     ["--trials", "1"], ["--jobs", "0"], ["--cost", "nan"], ["--plot", "P"], ["--plot", "out.png"], ["--json"],
     ["--per-position", "--json"], ["--method", "nope"], ["--confidence", "2"]]))
def test_cli_bound_hostile(pq, k, logits, extra):
    p, q = pq
    with tempfile.TemporaryDirectory() as d:
        pp, qq = _write(Path(d), *p), _write(Path(d), *q)
        extra = [str(pp) if v == "P" else (str(Path(d) / v) if v.endswith(".png") else v) for v in extra]
        argv = ["bound", "--p", str(pp), "--q", str(qq), "--k", k, "--method", "sd", "--jobs", "1"] + extra \
            + (["--logits"] if logits else [])
        rc, _ = _run_cli(argv, [pp, qq])
        if rc == 0 and not logits and "--atol" not in extra:
            a, b = _independently_valid(pp), _independently_valid(qq)
            if a is None or b is None or a.shape != b.shape:
                _silent(f"bound accepted invalid input {p[0]} / {q[0]}")


@settings(max_examples=150, **SETTINGS)
@given(pq=pairs(), tree=hostile_trees, calls=hostile_ints, method=st.sampled_from(
    ["sd", "ersd", "specinfer", "spectr", "nope"]), extra=st.sampled_from(
    [[]] * 10 + [[], ["--emit-tokens", "P"], ["--emit-tokens", "D"], ["--emit-tokens", "t.npy"], ["--streams", "0"],
     ["--confidence", "1.5"], ["--rho", "-1"], ["--engine", "reference"], ["--json"], ["--seed", "-3"]]))
def test_cli_simulate_hostile(pq, tree, calls, method, extra):
    p, q = pq
    with tempfile.TemporaryDirectory() as d:
        pp, qq = _write(Path(d), *p), _write(Path(d), *q)
        extra = [str(pp) if v == "P" else d if v == "D" else (str(Path(d) / v) if v.endswith(".npy") else v)
                 for v in extra]
        if calls.isdigit() and int(calls) > 1000:
            calls = "1000"
        argv = ["simulate", "--method", method, "--p", str(pp), "--q", str(qq), "--tree", tree, "--calls", calls] \
            + extra
        rc, _ = _run_cli(argv, [pp, qq])
        if rc == 0:
            a, b = _independently_valid(pp), _independently_valid(qq)
            if a is None or b is None or a.shape != b.shape:
                _silent(f"simulate accepted invalid input {p[0]} / {q[0]}")


@settings(max_examples=100, **SETTINGS)
@given(pq=pairs(), ks=hostile_ks, trials=hostile_ints)
def test_cli_channel_hostile(pq, ks, trials):
    p, q = pq
    with tempfile.TemporaryDirectory() as d:
        pp, qq = _write(Path(d), *p), _write(Path(d), *q)
        if trials.isdigit() and int(trials) > 100:
            trials = "100"
        rc, _ = _run_cli(["channel", "--p", str(pp), "--q", str(qq), "--ks", ks, "--trials", trials], [pp, qq])
        if rc == 0:
            a, b = _independently_valid(pp), _independently_valid(qq)
            if a is None or b is None:
                _silent(f"channel accepted invalid input {p[0]} / {q[0]}")


@settings(max_examples=40, **SETTINGS)
@given(opts=st.sampled_from([["--only", ""], ["--only", ","], ["--only", "fig9"], ["--jobs", "0"], ["--scale", "0"],
                             ["--scale", "nan"], ["--scale", "-1"], ["--out", "FILE"], ["--jobs", "x"],
                             ["--full", "--quick"], ["--backend", "nope", "--only", "fig9"]]))
def test_cli_figures_hostile_options(opts):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "file.txt"
        f.write_text("keep me")
        opts = [str(f) if v == "FILE" else v for v in opts]
        if "--out" not in opts:
            opts = opts + ["--out", str(Path(d) / "figs")]
        rc, _ = _run_cli(["figures"] + opts, [f])
        assert rc in (2, "usage")


@settings(max_examples=40, **SETTINGS)
@given(blob=st.binary(max_size=120), opts=st.sampled_from(
    [[], ["--k", "1,,2"], ["--confidence", "2"], ["--methods", "nope"], ["--trees", ""], ["--new-tokens", "x"],
     ["--out", "LOG"], ["--trees", "chain:-1"]]))
def test_cli_llm_validate_hostile(blob, opts):
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "run.npz"
        log.write_bytes(blob)
        opts = [str(log) if v == "LOG" else v for v in opts]
        if "--out" not in opts:
            opts = opts + ["--out", "-"]
        rc, _ = _run_cli(["llm", "validate", "--log", str(log)] + opts, [log])
        assert rc in (2, "usage")


@settings(max_examples=30, **SETTINGS)
@given(opts=st.sampled_from([["--new-tokens", "0"], ["--new-tokens", "-3"], ["--prompt-tokens", "0"],
                             ["--temperature", "0"], ["--temperature", "nan"], ["--skip-layers", "a,b"],
                             ["--out", "PROMPTS"], ["--out", "DIR"], ["--prompt-file", "MISSING"]]))
def test_cli_llm_log_hostile_options(opts):
    with tempfile.TemporaryDirectory() as d:
        prompts = Path(d) / "prompts.json"
        prompts.write_text('["hello"]')
        sub = {"PROMPTS": str(prompts), "DIR": d, "MISSING": str(Path(d) / "none.json")}
        opts = [sub.get(v, v) for v in opts]
        base = ["llm", "log", "--new-tokens", "2", "--prompt-file", str(prompts), "--out", str(Path(d) / "o.npz")]
        argv = base + opts
        rc, _ = _run_cli(argv, [prompts])
        assert rc in (2, "usage")


# ----------------------------------------------------------------------------- issue 22: fixed reproducers
def _pq_files(d: Path, vocab: int = 3):
    if vocab == 3:
        p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    else:
        rng = np.random.default_rng(0)
        z = 2 * rng.standard_normal(vocab)
        p, q = np.exp(z - z.max()), np.exp(z + rng.standard_normal(vocab) - z.max())
        p, q = p / p.sum(), q / q.sum()
    np.save(d / "p.npy", p)
    np.save(d / "q.npy", q)
    return d / "p.npy", d / "q.npy"


def _small_log(d: Path, name: str = "run.npz") -> Path:
    from test_hostile_reproducers import _race_log

    return _race_log(d / name, n_seq=2, length=6, vocab=12)


def _fig6_data(d: Path, change) -> Path:
    rows = [{"method": "sd", "tree": f"chain:{k}", "k": k,
             "predicted": {"mean": 1.5, "ci_low": 1.4, "ci_high": 1.6},
             "measured": {"mean": 1.5, "ci_low": 1.3, "ci_high": 1.7}, "target_calls": 100, "wall_seconds": 1.0}
            for k in (1, 2)]
    change(rows[0])
    (d / "data").mkdir(exist_ok=True)
    (d / "data" / "llm_validation.json").write_text(json.dumps({"rows": rows}))
    return d / "data"


def _set(path, value):
    def change(row):
        obj = row
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return change


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def _old(d: Path, name: str, mode: int = 0o644) -> Path:
    f = d / name
    f.write_bytes(b"old bytes that must survive")
    os.chmod(f, mode)
    return f


_BOUND = ["--k", "1", "--method", "sd", "--jobs", "1"]


def _case_bound(d, *extra, vocab=3):
    p, q = _pq_files(d, vocab)
    return ["bound", "--p", str(p), "--q", str(q)] + _BOUND + list(extra), [p, q]


def _case_log(d, *extra):
    log = _small_log(d)
    return ["bound", "--log", str(log), "--k", "1", "--method", "sd", "--trials", "20"] + list(extra), [log]


def _case_sim(d, *extra):
    p, q = _pq_files(d)
    return ["simulate", "--method", "sd", "--p", str(p), "--q", str(q), "--tree", "chain:1", "--calls", "20"] \
        + list(extra), [p, q]


def _case_fig6(d, change):
    data = _fig6_data(d, change)
    return ["figures", "--only", "fig6_real_models", "--out", str(d / "figs"), "--data", str(data)], \
        [data / "llm_validation.json"]


def _mode_kept(d, argv_keep, out_name, umask_=0o077, mode=0o644):
    """A --force write over an existing 0644 file under umask 077: the file keeps 0644 (else: silent)."""
    argv, keep = argv_keep
    return argv, keep, {"umask": umask_, "mode": (d / out_name, mode)}


def _umask_followed(d, argv_keep, out_name, umask_=0o027):
    argv, keep = argv_keep
    return argv, keep, {"umask": umask_, "mode": (d / out_name, 0o666 & ~umask_)}


#: id -> (build(d) -> (argv, files that must not change[, extra]), expected: "error" or "valid")
FIXED = {
    # CLI flags that were accepted silently
    "bound --temperatures ''": (lambda d: _case_log(d, "--temperatures", ""), "error"),
    "bound --temperatures 1 --positions 0": (lambda d: _case_log(d, "--temperatures", "1", "--positions", "0"), "error"),
    "bound --temperatures 1 --positions -1": (lambda d: _case_log(d, "--temperatures", "1", "--positions", "-1"),
                                             "error"),
    "bound --temperatures -1": (lambda d: _case_log(d, "--temperatures", "-1"), "error"),
    "bound --temperatures nan": (lambda d: _case_log(d, "--temperatures", "nan"), "error"),
    "bound --temperatures 1 --draft-temperatures 1,2": (
        lambda d: _case_log(d, "--temperatures", "1", "--draft-temperatures", "1,2"), "error"),
    "bound --positions without --temperatures": (lambda d: _case_log(d, "--positions", "2"), "error"),
    "bound --p/--q --temperatures 1": (lambda d: _case_bound(d, "--temperatures", "1"), "error"),
    "bound --method ',,,'": (lambda d: _case_bound(d, "--method", ",,,"), "error"),
    "bound --log --method ',,,'": (lambda d: _case_log(d, "--method", ",,,"), "error"),
    "bound --method ''": (lambda d: _case_bound(d, "--method", ""), "error"),
    "bound --log --top-n ''": (lambda d: _case_log(d, "--top-n", ""), "error"),
    "bound --log --top-n 0": (lambda d: _case_log(d, "--top-n", "0"), "error"),
    "bound --log --top-n a": (lambda d: _case_log(d, "--top-n", "a"), "error"),
    "bound --temperatures 0,1 (valid)": (lambda d: _case_log(d, "--temperatures", "0,1", "--positions", "3"), "valid"),
    # figure 6's data
    "fig6 predicted mean 0": (lambda d: _case_fig6(d, _set(("predicted",), {"mean": 0, "ci_low": 0, "ci_high": 0})),
                              "error"),
    "fig6 measured mean 0.5 (< 1 token per call)": (
        lambda d: _case_fig6(d, _set(("measured",), {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6})), "error"),
    "fig6 target_calls a list": (lambda d: _case_fig6(d, _set(("target_calls",), [1, 2])), "error"),
    "fig6 target_calls a string": (lambda d: _case_fig6(d, _set(("target_calls",), "100")), "error"),
    "fig6 target_calls negative": (lambda d: _case_fig6(d, _set(("target_calls",), -5)), "error"),
    "fig6 wall_seconds nan-string": (lambda d: _case_fig6(d, _set(("wall_seconds",), "nan")), "error"),
    "fig6 method a number": (lambda d: _case_fig6(d, _set(("method",), 3)), "error"),
    "fig6 mean a boolean": (lambda d: _case_fig6(d, _set(("predicted", "mean"), True)), "error"),
    "fig6 valid rows": (lambda d: _case_fig6(d, lambda row: None), "valid"),
    # figures' folders
    "figures --out ''": (lambda d: (["figures", "--only", "fig1_trees", "--out", ""], []), "error"),
    "figures --data a file": (lambda d: (["figures", "--only", "fig6_real_models", "--out", str(d / "f"), "--data",
                                          str(_old(d, "x.json"))], [d / "x.json"]), "error"),
    "figures --out a file": (lambda d: (["figures", "--only", "fig1_trees", "--out", str(_old(d, "o.txt"))],
                                        [d / "o.txt"]), "error"),
    "figures over a foreign fig1_trees.png": (
        lambda d: ((d / "figs").mkdir() or ["figures", "--only", "fig1_trees", "--out", str(d / "figs"), "--scale",
                                            "0.01"], [_old(d / "figs", "fig1_trees.png")]), "error"),
    "figures over a foreign manifest.json": (
        lambda d: ((d / "figs").mkdir() or ["figures", "--only", "fig1_trees", "--out", str(d / "figs"), "--scale",
                                            "0.01"], [_old(d / "figs", "manifest.json")]), "error"),
    # clobber attempts
    "bound --log x.png --plot x.png": (
        lambda d: (lambda log: (["bound", "--log", str(log), "--temperatures", "1", "--plot", str(log)], [log]))(
            _small_log(d, "x.png")), "error"),
    "bound --log x.png --plot x.png --force": (
        lambda d: (lambda log: (["bound", "--log", str(log), "--temperatures", "1", "--plot", str(log), "--force"],
                                [log]))(_small_log(d, "x.png")), "error"),
    "bound --plot onto --p": (lambda d: (lambda a: (a[0] + ["--plot", a[0][2], "--force"], a[1]))(_case_bound(d)),
                              "error"),
    "bound --plot existing": (lambda d: (lambda a: (a[0] + ["--plot", str(_old(d, "old.png"))],
                                                    a[1] + [d / "old.png"]))(_case_bound(d)), "error"),
    "bound --temperatures --plot existing": (
        lambda d: (lambda a: (a[0] + ["--temperatures", "1", "--plot", str(_old(d, "old.png"))],
                              a[1] + [d / "old.png"]))(_case_log(d)), "error"),
    "simulate --emit-tokens existing": (lambda d: (lambda a: (a[0] + ["--emit-tokens", str(_old(d, "t.npy"))],
                                                              a[1] + [d / "t.npy"]))(_case_sim(d)), "error"),
    "simulate --emit-tokens onto --q --force": (
        lambda d: (lambda a: (a[0] + ["--emit-tokens", a[0][6], "--force"], a[1]))(_case_sim(d)), "error"),
    "bound --plot ''": (lambda d: _case_bound(d, "--plot", ""), "error"),
    "llm validate --out ''": (lambda d: (lambda log: (["llm", "validate", "--log", str(log), "--out", ""], [log]))(
        _small_log(d)), "error"),
    "llm validate --plot ''": (lambda d: (lambda log: (["llm", "validate", "--log", str(log), "--plot", ""], [log]))(
        _small_log(d)), "error"),
    "llm log --out ''": (lambda d: (["llm", "log", "--new-tokens", "1", "--out", ""], []), "error"),
    "simulate --emit-tokens ''": (lambda d: (lambda a: (a[0] + ["--emit-tokens", ""], a[1]))(_case_sim(d)), "error"),
    "llm log --out existing": (lambda d: (["llm", "log", "--new-tokens", "1", "--out", str(_old(d, "o.npz"))],
                                          [d / "o.npz"]), "error"),
    "llm log --out onto --prompt-file --force": (
        lambda d: (lambda f: (["llm", "log", "--new-tokens", "1", "--prompt-file", str(f), "--out", str(f),
                               "--force"], [f]))(_old(d, "prompts.npz")), "error"),
    "llm validate --out existing": (
        lambda d: (lambda log: (["llm", "validate", "--log", str(log), "--out", str(_old(d, "v.json"))],
                                [log, d / "v.json"]))(_small_log(d)), "error"),
    "llm validate --plot onto --log --force": (
        lambda d: (lambda log: (["llm", "validate", "--log", str(log), "--plot", str(log), "--force"], [log]))(
            _small_log(d, "run.png")), "error"),
    # file modes (a wrong mode is a silently wrong result)
    "bound --plot --force keeps 0644 (umask 077)": (
        lambda d: _mode_kept(d, (lambda a: (a[0] + ["--plot", str(_old(d, "m.png")), "--force"], a[1]))(
            _case_bound(d)), "m.png"), "valid"),
    "bound --plot follows umask 027": (
        lambda d: _umask_followed(d, (lambda a: (a[0] + ["--plot", str(d / "n.png")], a[1]))(_case_bound(d)),
                                  "n.png"), "valid"),
    "simulate --emit-tokens --force keeps 0600 (umask 022)": (
        lambda d: _mode_kept(d, (lambda a: (a[0] + ["--emit-tokens", str(_old(d, "t.npy", 0o600)), "--force"],
                                            a[1]))(_case_sim(d)), "t.npy", 0o022, 0o600), "valid"),
    "simulate --emit-tokens follows umask 002": (
        lambda d: _umask_followed(d, (lambda a: (a[0] + ["--emit-tokens", str(d / "t2.npy")], a[1]))(_case_sim(d)),
                                  "t2.npy", 0o002), "valid"),
    "figures follow umask 077": (
        lambda d: _umask_followed(d, (["figures", "--only", "fig1_trees", "--out", str(d), "--scale", "0.01",
                                       "--jobs", "1"], []), "fig1_trees.png", 0o077), "valid"),
    # runaways: refused before the work, with the estimate and the flag
    "figures --scale 1e9": (lambda d: (["figures", "--scale", "1e9", "--out", str(d / "f")], []), "error"),
    "simulate --engine reference --calls 1e7": (
        lambda d: (lambda a: (a[0][:-2] + ["--calls", "10000000", "--engine", "reference"], a[1]))(_case_sim(d)),
        "error"),
    "channel --trials 3e8": (lambda d: (lambda p, q: (["channel", "--p", str(p), "--q", str(q), "--trials",
                                                       "300000000"], [p, q]))(*_pq_files(d)), "error"),
    "bound --rank-tol 1e-300": (lambda d: _case_bound(d, "--rank-tol", "1e-300"), "error"),
    "bound --rank-tol nan": (lambda d: _case_bound(d, "--rank-tol", "nan"), "error"),
    "bound --log --rank-tol 1e-300": (lambda d: _case_log(d, "--rank-tol", "1e-300"), "error"),
    # sd alone needs no rank law (issue 23): quick at any V; an ERSD method at a tight tolerance is refused
    "bound V = 262,144 --method sd (no rank law)": (lambda d: _case_bound(d, vocab=262_144), "valid"),
    "bound V = 262,144 ersd --rank-tol 1e-9": (lambda d: _case_bound(d, "--method", "ersd", "--rank-tol", "1e-9",
                                                                      vocab=262_144), "error"),
    "bound V = 262,144 --rank-tol 1e-300": (lambda d: _case_bound(d, "--rank-tol", "1e-300", vocab=262_144), "error"),
    # a scheduler that cannot be reached (fast failure, one line)
    "figures --scheduler unreachable": (
        lambda d: (["figures", "--only", "fig1_trees", "--out", str(d / "f"), "--backend", "dask", "--scheduler",
                    "tcp://127.0.0.1:9"], []), "error"),
    "bound --log --scheduler unreachable": (
        lambda d: _case_log(d, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9"), "error"),
}


@pytest.mark.parametrize("case", list(FIXED))
def test_fixed_reproducer(case, tmp_path, monkeypatch):
    """Every non-import case issue 22 names, classified; a refusal must be one line, a valid run correct."""
    if "scheduler" in case:
        pytest.importorskip("dask.distributed")
        import chansim.common.parallel

        monkeypatch.setattr(chansim.common.parallel, "CONNECT_TIMEOUT_S", 2.0)
    monkeypatch.chdir(tmp_path)                            # nothing may land in the working folder by accident
    build, expected = FIXED[case]
    built = build(tmp_path)
    argv, keep = built[0], built[1]
    extra = built[2] if len(built) > 2 else {}
    listing = sorted(os.listdir(tmp_path))
    previous = os.umask(0o022)
    os.umask(extra.get("umask", previous))
    try:
        rc, err = _run_cli(argv, keep)
    finally:
        os.umask(previous)
    if expected == "error":
        if rc == 0:
            _silent(f"{case}: accepted (exit 0); must be refused")
        if argv[:1] == ["figures"] and "--out" in argv and not argv[argv.index("--out") + 1].strip():
            assert sorted(os.listdir(tmp_path)) == listing, "figures --out '' wrote into the working folder"
    else:
        assert rc == 0, f"{case}: a valid run was refused: {err}"
        if "mode" in extra:
            path, mode = extra["mode"]
            if _mode(path) != mode:
                _silent(f"{case}: {path.name} has mode {oct(_mode(path))}, expected {oct(mode)}")


def _unwritable(d: Path) -> Path:
    """A folder this process cannot create files in (0555; as root, whom modes do not stop, /sys)."""
    folder = d / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    if not os.access(folder, os.W_OK):
        return folder
    try:
        os.close(os.open("/sys/chansim-probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError:
        return Path("/sys")
    pytest.skip("no unwritable folder available")


FIXED.update({
    "bound --plot into an unwritable folder": (
        lambda d: _case_bound(d, "--plot", str(_unwritable(d) / "x.png")), "error"),
    "simulate --emit-tokens into an unwritable folder": (
        lambda d: (lambda a: (a[0] + ["--emit-tokens", str(_unwritable(d) / "t.npy")], a[1]))(_case_sim(d)), "error"),
    "figures --out in an unwritable folder": (
        lambda d: (["figures", "--only", "fig1_trees", "--out", str(_unwritable(d) / "figs"), "--scale", "0.01"], []),
        "error"),
    "bound --plot into a folder that is a file": (
        lambda d: _case_bound(d, "--plot", str(_old(d, "f.txt") / "x.png")), "error"),
})


def _api_fixed():
    from chansim.sampling import races
    from chansim.common import stats

    p, q = [0.5, 0.5], [0.5, 0.5]
    return {
        "races.race_winner with negative probabilities": lambda: races.race_winner(np.array([1.0, 1.0, 1.0]),
                                                                                  np.array([-0.5, 0.5, 1.0])),
        "races.race_winner with NaN noise": lambda: races.race_winner(np.array([np.nan, 1.0]), np.array([0.5, 0.5])),
        "races.race_top_m with negative noise": lambda: races.race_top_m(np.array([-1.0, 1.0]), np.array([0.5, 0.5]),
                                                                         1),
        "races.rank_distribution_mc(trials=0)": lambda: races.rank_distribution_mc(p, q, trials=0),
        "races.rank_distribution_mc(trials=-5)": lambda: races.rank_distribution_mc(p, q, trials=-5),
        "races.sample_ranks(trials=2.5)": lambda: races.sample_ranks(p, q, 2.5, np.random.default_rng(0)),
        "stats.wilson_interval successes > trials": lambda: stats.wilson_interval(11, 10),
        "stats.wilson_interval trials 0": lambda: stats.wilson_interval(0, 0),
        "stats.wilson_interval confidence 1": lambda: stats.wilson_interval(5, 10, 1.0),
        "stats.normal_quantile(nan)": lambda: stats.normal_quantile(float("nan")),
    }


@pytest.mark.parametrize("case", list(_api_fixed()))
def test_fixed_api_reproducer(case):
    """The public functions issue 22 names refuse misuse with ``ValueError`` (they used to return a token or NaN)."""
    COUNTS["inputs"] += 1
    try:
        out = _api_fixed()[case]()
    except ValueError as err:
        assert str(err).strip() and "\n" not in str(err).strip()
        CLASSES["clean error"] += 1
        return
    except BaseException as exc:  # noqa: BLE001
        CLASSES["traceback"] += 1
        raise AssertionError(f"{case} raised {type(exc).__name__}: {exc}") from exc
    CLASSES["valid"] += 1
    _silent(f"{case}: returned {out!r} instead of refusing")


def test_stdout_on_a_full_device():
    """``chansim ... > /dev/full`` ends in one line and exit 1, not a traceback at the exit flush."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    COUNTS["inputs"] += 1
    with tempfile.TemporaryDirectory() as d, open("/dev/full", "w") as full:
        p, q = _pq_files(Path(d))
        r = subprocess.run([sys.executable, "-m", "chansim", "bound", "--p", str(p), "--q", str(q), "--k", "1,2",
                            "--method", "sd", "--jobs", "1", "--json"], stdout=full, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    if "Traceback" in r.stderr or r.returncode != 1 or len(r.stderr.strip().splitlines()) != 1:
        CLASSES["traceback"] += 1
        raise AssertionError(f"exit {r.returncode}: {r.stderr!r}")
    assert "No space left on device (writing standard output)" in r.stderr
    CLASSES["clean error"] += 1


# ----------------------------------------------------------------------------- issue 22: generated clobber attempts
_WRITERS = {   # command -> (argv builder (d) -> (argv, inputs), output flag, suffix, may write without a model)
    "bound --plot": (lambda d: _case_bound(d), "--plot", ".png", True),
    "bound --temperatures --plot": (lambda d: _case_log(d, "--temperatures", "1"), "--plot", ".png", True),
    "simulate --emit-tokens": (lambda d: _case_sim(d), "--emit-tokens", ".npy", True),
    "llm validate --out": (lambda d: (lambda log: (["llm", "validate", "--log", str(log)], [log]))(_small_log(d)),
                           "--out", ".json", False),
    "llm log --out": (lambda d: (lambda f: (["llm", "log", "--new-tokens", "1", "--prompt-file", str(f)], [f]))(
        _old(d, "prompts.json")), "--out", ".npz", False),
}


@settings(max_examples=60, **SETTINGS)
@given(writer=st.sampled_from(sorted(_WRITERS)), target=st.sampled_from(
    ["input", "input-symlink", "existing", "existing-readonly", "new", "new-wrong-suffix", "directory", "empty",
     "missing-folder", "folder-is-file"]), force=st.booleans(), mask=st.sampled_from([0o022, 0o077, 0o002, 0o027]),
    mode=st.sampled_from([0o644, 0o600, 0o664, 0o444]))
def test_output_names_hostile(writer, target, force, mask, mode):
    """Every writing command, every kind of output name, with and without --force, under several umasks:
    inputs never change; an existing file changes only with --force (and keeps its mode); a new file
    follows the umask; no temporary file is left; refusals are one line."""
    build, flag, suffix, runs = _WRITERS[writer]
    passes_door = target in ("new", "missing-folder") or (target.startswith("existing") and force)
    assume(runs or not passes_door)          # llm commands: only names the door refuses (no model is loaded)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        argv, inputs = build(d)
        existing = None
        if target in ("input", "input-symlink"):
            out = inputs[0]
            if target == "input-symlink":
                (d / f"alias{suffix}").symlink_to(inputs[0])
                out = d / f"alias{suffix}"
        elif target.startswith("existing"):
            existing = out = _old(d, f"old{suffix}", 0o444 if target.endswith("readonly") else mode)
        elif target == "new":
            out = d / f"new{suffix}"
        elif target == "new-wrong-suffix":
            out = d / "new.txt"
        elif target == "directory":
            out = d
        elif target == "empty":
            out = ""
        elif target == "missing-folder":
            out = d / "missing" / f"x{suffix}"
        else:
            out = _old(d, "file.txt") / f"x{suffix}"
        old_mode = _mode(existing) if existing else None
        argv = argv + [flag, str(out)] + (["--force"] if force else [])
        previous = os.umask(mask)
        try:
            rc, err = _run_cli(argv, inputs + ([] if force or existing is None else [existing]))
        finally:
            os.umask(previous)
        if [f for f in d.rglob("*") if ".part" in f.name]:
            CLASSES["valid" if rc == 0 else "clean error"] -= 1
            CLASSES["clobber"] += 1
            raise AssertionError(f"{argv}: a temporary file was left behind")
        writes = target in ("new", "existing", "existing-readonly") and (force or target == "new") and runs
        if rc == 0 and not writes:
            _silent(f"{argv}: accepted (exit 0); must be refused")
        if rc == 0 and writes:
            expected = old_mode if existing else 0o666 & ~mask
            if _mode(out) != expected:
                _silent(f"{argv}: {Path(out).name} has mode {oct(_mode(out))}, expected {oct(expected)}")
        if rc != 0 and writes:
            raise AssertionError(f"{argv}: a valid write was refused: {err}")


# ----------------------------------------------------------------------------- issue 22: signals mid-write
@pytest.mark.parametrize("sig, status, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
@pytest.mark.parametrize("kind", ["plot", "tokens", "log", "json", pytest.param("figure", marks=pytest.mark.slow)])
@pytest.mark.parametrize("at", [2, pytest.param(1, marks=pytest.mark.slow)])
def test_signal_during_write(tmp_path, kind, sig, status, word, at):
    """SIGINT / SIGTERM delivered in the middle of each kind of write (a subprocess signals itself when the
    temporary output is opened: ``at`` 1 just created, 2 being written): the old file stays byte-identical
    with its mode, no temporary file is left, and stderr holds one line (no traceback)."""
    from test_output_door import _HOOK, _writes

    argv, target = _writes(tmp_path, _pq_files(tmp_path))[kind]
    target.parent.mkdir(exist_ok=True)
    if kind == "figure":
        assert main(argv) == 0                       # a previous set to regenerate
    else:
        target.write_bytes(os.urandom(4096))
    os.chmod(target, 0o644)
    before = _digest([target])
    COUNTS["inputs"] += 1
    r = subprocess.run([sys.executable, "-c", _HOOK] + argv, capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "HOSTILE_SIGNAL": sig,
                            "HOSTILE_AT": str(at)})
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("chansim: ")]
    if _digest([target]) != before or _mode(target) != 0o644:
        CLASSES["clobber"] += 1
        raise AssertionError(f"{kind}: {sig} left {target.name} changed")
    if [f for f in target.parent.iterdir() if ".part" in f.name]:
        CLASSES["clobber"] += 1
        raise AssertionError(f"{kind}: a temporary file was left behind")
    if "Traceback" in r.stderr or len(lines) != 1 or not lines[0].endswith(word) or r.returncode != status:
        CLASSES["traceback"] += 1
        raise AssertionError(f"{kind} {sig}: exit {r.returncode}, stderr {r.stderr!r}")
    CLASSES["clean error"] += 1


# ----------------------------------------------------------------------------- issue 22: public functions
_PV = np.array([0.5, 0.3, 0.2])
_QV = np.array([0.2, 0.3, 0.5])
#: hostile probability-like arguments (the first two valid)
_PROBS = [_PV, _QV, np.array([-0.2, 0.7, 0.5]), np.array([np.nan, 0.5, 0.5]), np.array([0.5, 0.5, 0.5]),
          np.array([]), np.array(0.5), np.array([[0.5, 0.5, 0.0]] * 2)[:, :2], np.array([np.inf, 0.0, 0.0]),
          np.array([1, 0, 0], dtype=bool), np.array(["0.5", "0.5"]), np.array([0.5, 0.5]) + 0j, np.array([0.5, 0.5]) + 0.1j,
          [0.5, 0.5, 0.0],
          None, "p"]
#: hostile counts (trials, m, kmax, ...): the first two valid
_COUNTS = [3, 10, 0, -1, 2.5, True, float("nan"), "3", None]
#: hostile levels / real parameters (confidence, alpha, temperature...): the first valid
_LEVELS = [0.9, 0.0, 1.0, -0.5, 2.0, float("nan"), float("inf"), True, "0.9", None]


def _api_calls():
    """(name, function, strategy of an argument tuple) for the exported functions of races, stats, channel,
    distributions and simulate (a representative argument signature each)."""
    from chansim import channel as ch, simulate as si
    from chansim.inputs import distributions as di
    from chansim.sampling import races as ra
    from chansim.common import stats as sta

    probs, counts, levels = st.sampled_from(_PROBS), st.sampled_from(_COUNTS), st.sampled_from(_LEVELS)
    rng = st.just(None).map(lambda _: np.random.default_rng(0))
    noise = st.sampled_from([np.array([1.0, 0.5, 2.0]), np.array([-1.0, 0.5, 2.0]), np.array([np.nan, 1.0, 1.0]),
                             np.array([1.0, 1.0]), np.array([])])
    ks = st.sampled_from([[1, 2], [0], [-1], [1.5], [], [True], "1", None, [10 ** 30]])
    calls = [
        ("races.race_winner", ra.race_winner, st.tuples(noise, probs)),
        ("races.race_top_m", ra.race_top_m, st.tuples(noise, probs, counts)),
        ("races.race_rank", ra.race_rank, st.tuples(noise, probs, st.sampled_from([0, 2, 3, -1, 1.5, None]))),
        # races.race_times is a kernel on checked input (its docstring): not swept
        ("races.competitor_rates", ra.competitor_rates, st.tuples(probs, probs)),
        ("races.er_acceptance", ra.er_acceptance, st.tuples(probs, probs)),
        ("races.er_acceptance_quadratic", ra.er_acceptance_quadratic, st.tuples(probs, probs)),
        ("races.rank_distribution_exact", ra.rank_distribution_exact, st.tuples(probs, probs)),
        ("races.rank_distribution_mc", ra.rank_distribution_mc, st.tuples(probs, probs, counts, st.just(0), levels)),
        ("races.sample_ranks", ra.sample_ranks, st.tuples(probs, probs, counts, rng)),
        ("races.keyed_uniform", ra.keyed_uniform, st.tuples(counts, counts, st.sampled_from([np.arange(3), -1, 2.5]))),
        ("races.portable_log", ra.portable_log, st.tuples(st.sampled_from([np.array([0.5, 1.0]), np.array([-1.0]),
                                                                           np.array([np.nan]), 0.0, "x"]))),
        ("stats.normal_quantile", sta.normal_quantile, st.tuples(levels)),
        ("stats.student_quantile", sta.student_quantile, st.tuples(levels, counts)),
        ("stats.no_spread_fraction", sta.no_spread_fraction, st.tuples(levels, counts)),
        ("stats.wilson_interval", sta.wilson_interval,
         st.tuples(st.sampled_from([5, 11, -1, np.array([1, 20]), 2.5, float("nan"), "5"]), counts, levels)),
        ("stats.ratio_standard_error", sta.ratio_standard_error,
         st.tuples(st.sampled_from([[2.0, 4.0], [2.0], [], [-1.0, 2.0]]), st.sampled_from([[1.0, 1.0], [0.0, 1.0]]),
                   st.sampled_from([3.0, float("nan")]))),
        ("stats.ratio_interval", sta.ratio_interval,
         st.tuples(st.sampled_from([[10, 12, 9, 11], [], [-1, 2, 3, 4], [np.nan] * 4]),
                   st.sampled_from([[4, 5, 4, 5], [0, 5, 4, 5], [4, 5]]), levels)),
        ("stats.bootstrap_ratios", sta.bootstrap_ratios,
         st.tuples(st.sampled_from([[10, 12], [], [np.nan, 1]]), st.sampled_from([[4, 5], [0, 5], [4]]), levels,
                   counts)),
        ("stats.bootstrap_ratio_interval", sta.bootstrap_ratio_interval,
         st.tuples(st.sampled_from([[10, 12], [], [np.nan, 1]]), st.sampled_from([[4, 5], [0, 5], [4]]), levels,
                   counts)),
        ("channel.pfr_sample", ch.pfr_sample, st.tuples(probs, probs, counts, rng)),
        ("channel.index_rates", ch.index_rates, st.tuples(probs, probs)),
        ("channel.index_pmf", ch.index_pmf, st.tuples(probs, probs, counts)),
        ("channel.index_cdf", ch.index_cdf, st.tuples(probs, probs, ks)),
        ("channel.list_acceptance", ch.list_acceptance, st.tuples(probs, probs, ks)),
        ("channel.expected_log2_index", ch.expected_log2_index, st.tuples(probs, probs)),
        ("channel.index_entropy", ch.index_entropy, st.tuples(probs, probs)),
        ("channel.elias_gamma_length", ch.elias_gamma_length, st.tuples(ks)),
        ("channel.elias_delta_length", ch.elias_delta_length, st.tuples(ks)),
        ("channel.expected_code_length", ch.expected_code_length,
         st.tuples(probs, probs, st.sampled_from(["delta", "gamma", "nope", None]))),
        ("channel.zipf_code_length", ch.zipf_code_length, st.tuples(probs, probs)),
        ("channel.pfr_log_bound", ch.pfr_log_bound, st.tuples(levels)),
        ("channel.sfrl_entropy_bound", ch.sfrl_entropy_bound, st.tuples(levels)),
        ("channel.channel_summary", ch.channel_summary, st.tuples(probs, probs, ks, st.sampled_from([0, 10, -1]))),
        ("channel.mc_index_stats", ch.mc_index_stats,
         st.tuples(st.sampled_from([np.array([1, 2, 3]), np.array([0, 1]), np.array([]), np.array([1.5])]), ks,
                   levels)),
        ("distributions.check_probs", di.check_probs, st.tuples(probs)),
        ("distributions.check_pair", di.check_pair, st.tuples(probs, probs)),
        ("distributions.check_rank_probs", di.check_rank_probs, st.tuples(probs)),
        ("distributions.check_logits", di.check_logits, st.tuples(probs)),
        ("distributions.softmax", di.softmax, st.tuples(probs, levels)),
        ("distributions.log_softmax", di.log_softmax, st.tuples(probs, levels)),
        ("distributions.entropy", di.entropy, st.tuples(probs, st.sampled_from(["nats", "bits", "x"]))),
        ("distributions.kl_divergence", di.kl_divergence, st.tuples(probs, probs)),
        ("distributions.total_variation", di.total_variation, st.tuples(probs, probs)),
        ("distributions.sd_acceptance", di.sd_acceptance, st.tuples(probs, probs)),
        ("distributions.renyi_divergence", di.renyi_divergence, st.tuples(probs, probs, levels)),
        ("distributions.dtype_atol", di.dtype_atol, st.tuples(st.sampled_from(["float64", "float16", "nope", None]),
                                                             counts)),
        ("distributions.synthetic_pair", di.synthetic_pair,
         st.tuples(st.sampled_from(["dirichlet", "zipf", "noisy", "nope"]), counts, levels)),
        ("distributions.dirichlet_pair", di.dirichlet_pair, st.tuples(counts, levels, levels)),
        ("distributions.zipf_pair", di.zipf_pair, st.tuples(counts, levels, levels)),
        ("distributions.noisy_target_pair", di.noisy_target_pair, st.tuples(counts, levels, levels, levels)),
        ("simulate.simulate", si.simulate,
         st.tuples(st.sampled_from(["sd", "nope", None]), st.sampled_from(["chain:1", "chain:-1", "x", None]), probs,
                   probs, counts)),
        ("simulate.generate", si.generate,
         st.tuples(st.sampled_from(["sd", "nope"]), st.sampled_from(["chain:1", "x"]), probs, probs, counts, counts)),
    ]
    return calls


_API = None


def _api():
    global _API
    if _API is None:
        _API = _api_calls()
    return _API


def _has_nan(value) -> bool:
    """Whether a returned value holds a NaN anywhere (arrays, numbers, tuples, dicts, dataclasses)."""
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nan(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return any(_has_nan(getattr(value, f)) for f in value.__dataclass_fields__)
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return bool(np.isnan(value).any())
    return False


@settings(max_examples=400, **SETTINGS)
@given(data=st.data())
def test_public_api_hostile(data):
    """Exported functions of races, stats, channel, distributions and simulate with hostile arguments:
    ``ValueError`` (or ``TypeError`` for a wrong type) is a clean error; a returned NaN is silently wrong."""
    name, func, args = data.draw(st.sampled_from(_api()), label="function")
    args = data.draw(args, label="args")
    COUNTS["inputs"] += 1
    try:
        with np.errstate(all="ignore"), _budget(30), warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)   # a silent cast to real is wrong
            out = func(*args)                     # judged by the result, not by numpy's floating-point warnings
    except (ValueError, TypeError) as err:
        if not str(err).strip() or "\n" in str(err).strip():
            CLASSES["traceback"] += 1
            raise AssertionError(f"{name}{_short(args)}: error message not one line: {err!r}") from err
        CLASSES["clean error"] += 1
        return
    except Runaway:
        CLASSES["runaway"] += 1
        raise AssertionError(f"{name}{_short(args)} still running after 30 s") from None
    except BaseException as exc:  # noqa: BLE001
        CLASSES["traceback"] += 1
        COUNTS["tracebacks"] += 1
        raise AssertionError(f"{name}{_short(args)} raised {type(exc).__name__}: {exc}") from exc
    CLASSES["valid"] += 1
    if _has_nan(out):
        _silent(f"{name}{_short(args)} returned NaN instead of refusing")


def _short(args) -> str:
    return "(" + ", ".join(np.array2string(a, threshold=6) if isinstance(a, np.ndarray) else repr(a)[:30]
                           for a in args) + ")"


def test_battery_counts(capsys):
    """Print the battery's figures (inputs tried, tracebacks, silent wrong results, files clobbered, runtime)."""
    total = sum(CLASSES.values())
    with capsys.disabled():
        print(f"\nhostile battery: {total} inputs: " + ", ".join(f"{CLASSES[c]} {c}" for c in CLASS_NAMES)
              + f" ({time.perf_counter() - _START:.1f} s)")
    assert CLASSES["traceback"] == CLASSES["silent"] == CLASSES["clobber"] == CLASSES["runaway"] == 0
    assert COUNTS["tracebacks"] == COUNTS["silent_wrong"] == COUNTS["clobbered"] == 0
