"""Property-based hostile-input battery over the loaders and every CLI command (issue 13, item 5).

Random malformed arrays, files and options are thrown at :func:`chansim.io.load_array` /
:func:`chansim.io.load_pair`, :func:`chansim.logs.format.read_log` and ``chansim bound | simulate |
channel | figures | llm log | llm validate``. Properties, for every example:

* no traceback: the loader raises ``ValueError``/``FileNotFoundError`` only; the CLI returns 0 or 2
  (argparse's own usage errors exit 2 too) and never lets another exception escape;
* exit 2 comes with one line on stderr naming the problem (argparse: a usage line, then one);
* no silent wrong result: exit 0 (or a loaded array) only when the inputs are independently valid
  probability vectors of a real numeric dtype (or logits with ``--logits``);
* no changed input: every input file has the same bytes afterwards.

Sized to run in well under 3 minutes on one core (``max_examples`` below); the counts are printed
at the end of the module (``pytest -s``).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chansim.cli import main
from chansim.distributions import dtype_atol
from chansim.io import load_array, load_pair
from chansim.logs.format import read_log

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
COUNTS = {"inputs": 0, "accepted": 0, "tracebacks": 0, "silent_wrong": 0, "clobbered": 0}
_START = time.perf_counter()

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


def _run_cli(argv, inputs):
    """main(argv) with the battery's properties checked; returns (rc, stderr)."""
    COUNTS["inputs"] += 1
    before = _digest(inputs)
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(argv)
    except SystemExit as exc:                                # argparse usage errors
        rc = exc.code
        assert rc == 2, f"{argv}: SystemExit({rc})"
        assert err.getvalue().strip().splitlines()[-1].startswith("chansim"), err.getvalue()
        rc = "usage"
    except BaseException as exc:  # noqa: BLE001 - the property: nothing escapes
        COUNTS["tracebacks"] += 1
        raise AssertionError(f"{argv} raised {type(exc).__name__}: {exc}") from exc
    if _digest(inputs) != before:
        COUNTS["clobbered"] += 1
        raise AssertionError(f"{argv} changed an input file")
    if rc == 2:
        lines = [ln for ln in err.getvalue().strip().splitlines() if not ln.startswith("chansim: ")]  # diagnostics
        assert len(lines) == 1 and lines[0].startswith("chansim") and "Traceback" not in err.getvalue(), err.getvalue()
    else:
        assert rc in (0, "usage"), f"{argv}: exit {rc}"
    COUNTS["accepted"] += rc == 0
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
            raise AssertionError(f"{spec[0]}: {type(exc).__name__}: {exc}") from exc
        if arr is not None:
            assert arr.dtype == np.float64 and arr.ndim >= 1 and arr.size
            assert np.isrealobj(arr)
        try:
            p, _ = load_pair(path, path, key=key)
        except (ValueError, FileNotFoundError):
            p = None
        if p is not None and key is None and path.suffix != ".npz" and _independently_valid(path) is None:
            COUNTS["silent_wrong"] += 1
            raise AssertionError(f"{spec[0]} accepted as probabilities but is not valid")
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
                COUNTS["silent_wrong"] += 1
                raise AssertionError(f"bound accepted invalid input {p[0]} / {q[0]}")


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
                COUNTS["silent_wrong"] += 1
                raise AssertionError(f"simulate accepted invalid input {p[0]} / {q[0]}")


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
                COUNTS["silent_wrong"] += 1
                raise AssertionError(f"channel accepted invalid input {p[0]} / {q[0]}")


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


def test_battery_counts(capsys):
    """Print the battery's figures (inputs tried, tracebacks, silent wrong results, files clobbered, runtime)."""
    with capsys.disabled():
        print(f"\nhostile battery: {COUNTS['inputs']} inputs ({COUNTS['accepted']} CLI runs accepted), "
              f"{COUNTS['tracebacks']} tracebacks, "
              f"{COUNTS['silent_wrong']} silent wrong results, {COUNTS['clobbered']} files clobbered, "
              f"{time.perf_counter() - _START:.1f} s")
    assert COUNTS["tracebacks"] == COUNTS["silent_wrong"] == COUNTS["clobbered"] == 0
