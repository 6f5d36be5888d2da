"""The input door: every malformed record, array or log named in the hostile reports is a one-line error (exit 2).

Each case is an exact input a user can hand to ``chansim llm import`` or ``chansim bound --log``;
the expected outcome is a single ``chansim ...: error: ...`` line naming the problem, never
a traceback, NaN, or a file accepted with wrong values.
"""
import json
import os

import numpy as np
import pytest

from chansim.cli import main
from chansim.logs.format import write_log
from chansim.logs.truncated import acceptance_bounds, read_truncated_log


def _chat(entries):
    return {"choices": [{"index": 0, "logprobs": {"content": entries}}]}


def _e(tok, lp, top=None):
    return {"token": f"token_id:{tok}", "logprob": lp,
            "top_logprobs": [{"token": f"token_id:{k}", "logprob": v} for k, v in (top or [])]}


GOOD = _chat([_e(1, -0.5, [(1, -0.5), (2, -1.5)]), _e(2, -0.7, [(2, -0.7), (0, -1.0)])])


def _import(tmp_path, target, draft=None, extra=()):
    t = tmp_path / "t.jsonl"
    d = tmp_path / "d.jsonl"
    t.write_text(target if isinstance(target, str) else json.dumps(target))
    d.write_text(json.dumps(GOOD) if draft is None else (draft if isinstance(draft, str) else json.dumps(draft)))
    return main(["llm", "import", "--target-records", str(t), "--draft-records", str(d), "--vocab-size", "8",
                 "--out", str(tmp_path / "o.npz"), *extra])


def _one_line_error(capsys, match):
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert match in err, err
    return err


RECORD_CASES = {
    "JSON list of numbers": ("[1, 2, 3]", "item 0 is int 1, expected a JSON object"),
    "JSONL of strings": ('"a"\n"b"\n', "line 1 is str"),
    "null log-prob": (_chat([_e(1, None, [(1, -0.5)])]), "content[].logprob: must be a number, got NoneType"),
    "string log-prob": (_chat([_e(1, "-0.5", [(1, -0.5)])]), "must be a number, got str"),
    "log-prob > 0": (_chat([_e(1, 0.3, [(1, 0.3)])]), "log-probability 0.3 > 0"),
    "NaN log-prob": ('{"choices": [{"logprobs": {"content": [{"token": "token_id:1", "logprob": NaN}]}}]}', "is NaN"),
    "logprobs.content null": ({"choices": [{"logprobs": {"content": None}}]}, "content: is null"),
    "choices as object": ({"choices": {"0": {}}}, "choices: must be a JSON list"),
    "duplicate ids in top_logprobs": (_chat([_e(1, -0.5, [(1, -0.5), (2, -1.5), (2, -1.5)])]), "lists token id 2 twice"),
    "duplicate ids, different values": (_chat([_e(1, -0.5, [(2, -1.5), (2, -2.5)])]), "lists token id 2 twice"),
    "produced token disagrees with its entry": (_chat([_e(1, -0.5, [(1, -0.9)])]), "but its list entry says"),
    "produced token at -inf": ('{"choices": [{"logprobs": {"content": [{"token": "token_id:1", "logprob": -Infinity, '
                               '"top_logprobs": []}]}}]}', "has probability 0"),
    "vLLM -9999 sentinel on the produced token": (_chat([_e(1, -9999.0, [])]), "has probability 0"),
    "negative id": (_chat([_e(-3, -0.5)]), "token id -3 is outside [0, 8)"),
    "id beyond the vocabulary": (_chat([_e(9, -0.5)]), "token id 9 is outside [0, 8)"),
    "head mass above 1": (_chat([_e(1, -0.1, [(1, -0.1), (2, -0.2)])]), "sum to"),
    "unknown shape": ({"foo": 1}, "unknown shape"),
    "legacy top_logprobs shorter than tokens": (
        {"choices": [{"logprobs": {"tokens": ["token_id:1", "token_id:2"], "token_logprobs": [-0.5, -0.7],
                                   "top_logprobs": [{"token_id:1": -0.5}]}}]}, "have different lengths"),
    "legacy duplicate string keys": ('{"choices": [{"logprobs": {"tokens": ["a"], "token_logprobs": [-0.5], '
                                     '"top_logprobs": [{"a": -0.5, "\\ufffd": -1.0, "\\ufffd": -2.0}]}}]}',
                                     "lists the key"),
    "llama.cpp null id": ({"completion_probabilities": [{"id": None, "logprob": -0.5, "top_logprobs": []}]},
                          "must be an integer token id, got NoneType"),
    "llama.cpp 1e20 id": ('{"completion_probabilities": [{"id": 1e20, "logprob": -0.5, "top_logprobs": []}]}',
                          "must be an integer token id, got float"),
    "llama.cpp float id": ({"completion_probabilities": [{"id": 1.0, "logprob": -0.5, "top_logprobs": []}]},
                           "must be an integer token id"),
    "llama.cpp string id": ({"completion_probabilities": [{"id": "x", "logprob": -0.5, "top_logprobs": []}]},
                            "must be a token id, got str"),
    "llama.cpp prob as string": ({"completion_probabilities": [{"id": 1, "prob": "0.5", "top_probs": []}]},
                                 "must be a number, got str"),
    "llama.cpp prob 1.5": ({"completion_probabilities": [{"id": 1, "prob": 1.5, "top_probs": []}]},
                           "probability 1.5 is outside [0, 1]"),
    "llama.cpp produced token above a listed one": (
        {"completion_probabilities": [{"id": 1, "logprob": -0.1, "top_logprobs": [{"id": 2, "logprob": -2.0}]}]},
        "is not listed but is more likely"),
    "TGI best_of": ({"generated_text": "", "details": {"tokens": [], "best_of_sequences": [{}]}}, "best_of"),
}


@pytest.mark.parametrize("case", list(RECORD_CASES))
def test_bad_records_are_one_line_errors(tmp_path, capsys, case):
    doc, match = RECORD_CASES[case]
    assert _import(tmp_path, doc) == 2
    _one_line_error(capsys, match)
    assert not (tmp_path / "o.npz").exists()


def test_records_path_is_a_folder_or_missing(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    assert main(["llm", "import", "--target-records", str(tmp_path / "dir"), "--draft-records", str(tmp_path / "dir"),
                 "--out", str(tmp_path / "o.npz")]) == 2
    _one_line_error(capsys, "is a folder")
    assert main(["llm", "import", "--target-records", str(tmp_path / "nope"), "--draft-records", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o.npz")]) == 2
    _one_line_error(capsys, "not found")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_records_unreadable(tmp_path, capsys):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(GOOD))
    f.chmod(0)
    assert main(["llm", "import", "--target-records", str(f), "--draft-records", str(f),
                 "--out", str(tmp_path / "o.npz")]) == 2
    _one_line_error(capsys, "cannot read")


def test_sentinels_on_the_draft_are_probability_zero(tmp_path):
    """vLLM's -9999.0 and llama.cpp's lowest float on the draft side: q = 0, finite intervals (never NaN)."""
    draft = _chat([_e(1, -9999.0, []), _e(2, -3.4028234663852886e38, [(0, -0.01)])])
    assert _import(tmp_path, GOOD, draft) == 0
    log = read_truncated_log(tmp_path / "o.npz")
    lo, hi = acceptance_bounds(log)
    assert np.isfinite(lo).all() and np.isfinite(hi).all() and (lo <= hi).all()
    ids, probs, floor = log.heads["draft"]
    assert probs[0][ids[0] == 1][0] == 0.0 and floor[0] == 1.0 and floor[1] == pytest.approx(np.exp(-0.01))


def test_empty_lists_and_sentinel_target(tmp_path, capsys):
    """The issue's vLLM position: log-prob -9999.0 with an empty list on the target is refused, not [nan, nan]."""
    assert _import(tmp_path, _chat([_e(1, -9999.0, [])]), _chat([_e(1, -0.5, [])])) == 2
    _one_line_error(capsys, "probability 0")


def test_temperature_refused_with_records(tmp_path, capsys):
    assert _import(tmp_path, GOOD, extra=("--temperature", "0.7")) == 2
    _one_line_error(capsys, "cannot be applied to top-n records")


# ----------------------------------------------------------------------------- output side of llm import
def test_out_never_onto_an_input_and_not_over_without_force(tmp_path, capsys):
    t = tmp_path / "t.npz"
    np.savez(t, a=np.zeros(1))
    before = t.read_bytes()
    assert main(["llm", "import", "--target-logits", str(t), "--draft-logits", str(t), "--tokens", str(t),
                 "--out", str(t), "--force"]) == 2
    _one_line_error(capsys, "also an input file")
    assert t.read_bytes() == before
    assert _import(tmp_path, GOOD) == 0
    capsys.readouterr()
    assert _import(tmp_path, GOOD) == 2
    _one_line_error(capsys, "already exists")
    assert _import(tmp_path, GOOD, extra=("--force",)) == 0


def test_interrupted_import_keeps_the_old_file(tmp_path, monkeypatch):
    assert _import(tmp_path, GOOD) == 0
    before = (tmp_path / "o.npz").read_bytes()

    def interrupted(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    rc = _import(tmp_path, GOOD, extra=("--force",))
    assert rc != 0
    assert (tmp_path / "o.npz").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".o.npz")] == []


# ----------------------------------------------------------------------------- arrays
def _arrays(tmp_path, t, d=None, y=None, name="t.npy"):
    tp = tmp_path / name
    if isinstance(t, bytes):
        tp.write_bytes(t)
    else:
        np.save(tp, t) if name.endswith(".npy") else np.savez(tp, a=t)
    np.save(tmp_path / "d.npy", np.zeros((3, 4)) if d is None else d)
    np.save(tmp_path / "y.npy", np.zeros(3, int) if y is None else y)
    return main(["llm", "import", "--target-logits", str(tp), "--draft-logits", str(tmp_path / "d.npy"),
                 "--tokens", str(tmp_path / "y.npy"), "--out", str(tmp_path / "o.npz")])


@pytest.mark.parametrize("case,make,match", [
    ("complex logits", lambda: np.zeros((3, 4), complex), "logits must be real numbers"),
    ("bool logits", lambda: np.zeros((3, 4), bool), "logits must be real numbers"),
    ("zero-byte .npy", lambda: b"", "the file is empty"),
    ("corrupt .npy", lambda: b"\x93NUMPY garbage", "not a readable .npy file"),
])
def test_bad_arrays(tmp_path, capsys, case, make, match):
    assert _arrays(tmp_path, make()) == 2
    _one_line_error(capsys, match)


def test_bad_array_files(tmp_path, capsys):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "x.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    for f in ("x.npz", "x.safetensors"):
        assert main(["llm", "import", "--target-logits", str(tmp_path / f), "--draft-logits", str(tmp_path / f),
                     "--tokens", str(tmp_path / f), "--out", str(tmp_path / "o.npz")]) == 2
        _one_line_error(capsys, "not a readable")
    np.save(tmp_path / "d.npy", np.zeros((3, 4)))
    np.save(tmp_path / "yf.npy", np.zeros(3))
    assert main(["llm", "import", "--target-logits", str(tmp_path / "d.npy"), "--draft-logits",
                 str(tmp_path / "d.npy"), "--tokens", str(tmp_path / "yf.npy"), "--out", str(tmp_path / "o.npz")]) == 2
    _one_line_error(capsys, "token ids must be integers")


# ----------------------------------------------------------------------------- logs: truncation, keys, metadata
def _log(tmp_path, meta=None, name="run.npz"):
    lp = np.log(np.full((2, 4), 0.25))
    return write_log(tmp_path / name, prompts=[[1]], tokens=[[0, 1]], target_log_probs=[lp], draft_log_probs=[lp],
                     metadata=meta or {"temperature": 1.0})


def test_logs_cut_in_half(tmp_path, capsys):
    full = _log(tmp_path)
    assert _import(tmp_path, GOOD) == 0
    for src in (full, tmp_path / "o.npz"):
        data = src.read_bytes()
        half = tmp_path / f"half_{src.name}"
        half.write_bytes(data[:len(data) // 2])
        capsys.readouterr()
        assert main(["bound", "--log", str(half)]) == 2
        _one_line_error(capsys, "truncated or corrupt")


def test_topn_log_without_draft_floor(tmp_path, capsys):
    assert _import(tmp_path, GOOD) == 0
    with np.load(tmp_path / "o.npz") as npz:
        arr = {k: npz[k] for k in npz.files if k != "draft_floor"}
    np.savez(tmp_path / "nofloor.npz", **arr)
    capsys.readouterr()
    assert main(["bound", "--log", str(tmp_path / "nofloor.npz")]) == 2
    _one_line_error(capsys, "missing key(s) draft_floor")


@pytest.mark.parametrize("meta,match", [
    ({"temperature": 0}, "temperature must be a finite number > 0"),
    ({"temperature": "hot"}, "temperature must be a finite number > 0"),
    ({"draft_temperature": -1}, "draft_temperature must be a finite number > 0"),
    ({"seed": "4"}, "seed must be an integer"),
    ({"seed": None, "sampling": "keyed race (x)"}, "seed is null"),
])
def test_log_metadata_checked(tmp_path, capsys, meta, match):
    good = _log(tmp_path)
    with np.load(good) as npz:
        arr = {k: npz[k] for k in npz.files}
    m = json.loads(str(arr["metadata"][()]))
    m.update(meta)
    arr["metadata"] = np.array(json.dumps(m))
    np.savez(tmp_path / "bad.npz", **arr)
    assert main(["bound", "--log", str(tmp_path / "bad.npz")]) == 2
    _one_line_error(capsys, match)
    with pytest.raises(ValueError, match=match.split(" must")[0]):
        _log(tmp_path, meta={"temperature": 1.0, **meta}, name="w.npz")


def test_out_is_a_folder(tmp_path, capsys):
    (tmp_path / "o.npz").mkdir()
    assert _import(tmp_path, GOOD) == 2
    _one_line_error(capsys, "is a directory")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_mid_write_keeps_the_old_file(tmp_path, sig):
    """A real signal while ``llm import --out`` writes over an existing log: the old file stays byte-identical."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    assert _import(tmp_path, GOOD) == 0
    before = (tmp_path / "o.npz").read_bytes()
    marker = tmp_path / "writing"
    code = (
        "import sys, time, numpy as np\n"
        "def slow(f, **arrays):\n"
        "    f.write(b'PK\\x03\\x04 partial'); f.flush()\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    time.sleep(60)\n"
        "np.savez_compressed = slow\n"
        "from chansim.cli import main\n"
        f"sys.exit(main(['llm', 'import', '--target-records', {str(tmp_path / 't.jsonl')!r}, '--draft-records', "
        f"{str(tmp_path / 'd.jsonl')!r}, '--vocab-size', '8', '--out', {str(tmp_path / 'o.npz')!r}, '--force']))\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()[1].decode()[-500:]
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert (tmp_path / "o.npz").read_bytes() == before
    if sig == "SIGINT":
        assert b"Traceback" not in err
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".o.npz")] == []


@pytest.mark.parametrize("edit,match", [
    (lambda a, m: m.update(notes=5), "notes must be a list of strings"),
    (lambda a, m: m.update(n_positions=99), "n_positions 99 disagrees"),
    (lambda a, m: m.update(vocab_size="8"), "vocab_size must be an integer"),
    (lambda a, m: a.update(draft_floor=np.full_like(a["draft_floor"], np.nan)), "floor must lie in [0, 1]"),
    (lambda a, m: a.update(target_ids=a["target_ids"].astype(np.float64)), "must be an integer array"),
    (lambda a, m: a.update(target_ids=np.full_like(a["target_ids"], -5)), "negative token id"),
    (lambda a, m: a.update(token_offsets=a["token_offsets"][:-1]), "do not split"),
])
def test_topn_log_fields_checked(tmp_path, capsys, edit, match):
    assert _import(tmp_path, GOOD) == 0
    with np.load(tmp_path / "o.npz") as npz:
        arr = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arr["metadata"][()]))
    edit(arr, meta)
    arr["metadata"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "bad.npz", **arr)
    capsys.readouterr()
    assert main(["bound", "--log", str(tmp_path / "bad.npz")]) == 2
    _one_line_error(capsys, match)


def test_tail_must_fit_under_the_floor(tmp_path, capsys):
    """A ranked entry at probability 0 (vLLM -9999 after top-k) leaves no room for unlisted mass: checked."""
    assert _import(tmp_path, _chat([_e(1, -0.7, [(1, -0.7), (2, -9999.0)])])) == 2
    _one_line_error(capsys, "leave mass")
    # V = 8, floor e^-3 ~ 0.05: at most 6 * 0.05 = 0.3 unlisted, but 1 - e^-0.7 - e^-3 ~ 0.45
    assert _import(tmp_path, _chat([_e(1, -0.7, [(1, -0.7), (2, -3.0)])])) == 2
    _one_line_error(capsys, "allow at most")


def test_llamacpp_raw_values_with_sampling_settings_refused(tmp_path, capsys):
    """llama.cpp's defaults (temperature 0.8, top_k 40, ...) with raw log-probs: the list is not the sampled law."""
    rec = {"content": "", "completion_probabilities": [{"id": 1, "logprob": -0.5, "top_logprobs": [
        {"id": 1, "logprob": -0.5}, {"id": 2, "logprob": -1.5}]}],
        "generation_settings": {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "n_probs": 2}}
    assert _import(tmp_path, rec, rec) == 2
    _one_line_error(capsys, "temperature 0.8, top_k 40, top_p 0.95, min_p 0.05")
    rec["generation_settings"] = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    assert _import(tmp_path, rec, rec, extra=("--force",)) == 0


@pytest.mark.parametrize("extra,match", [
    (("--strip-pads",), "--strip-pads does not apply"), (("--eos-token-id", "2"), "--eos-token-id does not apply"),
    (("--skip-layers", "3"), "--skip-layers does not apply"), (("--device", "cuda"), "--device does not apply"),
    (("--draft-skip", "-1"), "--draft-skip must be an integer >= 0"), (("--seed", "-4"), "--seed must be >= 0"),
])
def test_flags_never_accepted_and_ignored(tmp_path, capsys, extra, match):
    assert _import(tmp_path, GOOD, extra=extra) == 2
    _one_line_error(capsys, match)
