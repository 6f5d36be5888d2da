"""The log format: round trip on small synthetic arrays, precision rule, and every corruption case.

No model needed. Corrupt files are made by truncating bytes, deleting keys and
editing arrays of a valid log; each must raise LogError naming the file and problem.
"""
import json
import zipfile

import numpy as np
import pytest

from chansim.logs.format import FORMAT_VERSION, LogError, LogFileNotFoundError, read_log, write_log

V = 7


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _inputs(seed=0, lengths=(3, 5)):
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(0, V, size=2 + i).tolist() for i in range(len(lengths))]
    tlp = [_log_softmax(rng.normal(size=(n, V)) * 2) for n in lengths]
    dlp = [_log_softmax(rng.normal(size=(n, V)) * 2) for n in lengths]
    tokens = [np.array([rng.choice(V, p=np.exp(r)) for r in t]) for t in tlp]
    meta = {"temperature": 1.0, "seed": 3, "target": {"path": "x.gguf", "sha256": "ab"}}
    return dict(prompts=prompts, tokens=tokens, target_log_probs=tlp, draft_log_probs=dlp, metadata=meta)


@pytest.fixture()
def good(tmp_path):
    inputs = _inputs()
    path = write_log(tmp_path / "run.npz", **inputs)
    return path, inputs


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(path, arrays, out_name="bad.npz"):
    out = path.parent / out_name
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    return out


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, compress):
    inputs = _inputs(1)
    path = write_log(tmp_path / "r.npz", compress=compress, **inputs)
    assert path == tmp_path / "r.npz" and path.is_file()
    run = read_log(path)
    assert run.n_sequences == 2 and run.n_positions == 8 and run.vocab_size == V
    assert run.prompts == inputs["prompts"]
    for i in range(2):
        p, q, y = run.sequence(i)
        assert p.dtype == np.float64 and p.shape == (len(inputs["tokens"][i]), V)
        np.testing.assert_array_equal(y, inputs["tokens"][i])
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-14)
        # float16 rounding: relative error of each probability <= exp(u |log p|) - 1 (+ renormalisation)
        p_true = np.exp(inputs["target_log_probs"][i])
        rel = np.abs(p / p_true - 1)
        bound = np.expm1(2.0 ** -11 * np.abs(inputs["target_log_probs"][i])) + 2 * run.normalisation_error["target"]
        assert np.all(rel <= bound + 1e-12)
        np.testing.assert_array_equal(run.positions(i), len(inputs["prompts"][i]) + np.arange(len(y)))
    assert len(list(run.sequences())) == 2
    meta = run.metadata
    assert meta["temperature"] == 1.0 and meta["target"]["sha256"] == "ab"
    for key in ("format_version", "created", "chansim", "python", "numpy", "n_positions", "vocab_size"):
        assert key in meta
    assert meta["n_positions"] == 8 and meta["format_version"] == FORMAT_VERSION
    assert 0 < run.normalisation_error["target"] < 1e-3


def test_pair_statistics_and_predict_path(good):
    from chansim.inputs.distributions import sd_acceptance
    from chansim.predict import predict_path

    path, inputs = good
    run = read_log(path)
    st = run.pair_statistics()
    assert set(st) == {"sd_acceptance", "er_acceptance", "kl_nats"}
    assert all(v.shape == (run.n_positions,) for v in st.values())
    p = np.exp(np.concatenate(inputs["target_log_probs"]))
    q = np.exp(np.concatenate(inputs["draft_log_probs"]))
    np.testing.assert_allclose(st["sd_acceptance"], sd_acceptance(p, q), atol=2e-3)
    assert np.all(st["er_acceptance"] <= st["sd_acceptance"] + 1e-12) and np.all(st["kl_nats"] >= 0)
    pred = predict_path("sd", [1, 1], run.sequences())
    assert 1.0 <= pred.tokens_per_call <= 3.0


def test_minus_inf_entries_are_kept(tmp_path):
    inputs = _inputs(2)
    inputs["draft_log_probs"][0][:, 0] = -np.inf           # draft puts no mass on token 0
    inputs["draft_log_probs"][0] = _log_softmax(inputs["draft_log_probs"][0])
    run = read_log(write_log(tmp_path / "r.npz", **inputs))
    assert np.all(run.sequence(0)[1][:, 0] == 0.0)


# ----------------------------------------------------------------------------- writer refuses bad input
@pytest.mark.parametrize("edit,match", [
    (lambda d: d["tokens"].pop(), "tokens has 1 sequences"),
    (lambda d: [d[k].__setitem__(0, d[k][0][:2]) for k in ("target_log_probs", "draft_log_probs")],
     "3 tokens but 2 rows"),
    (lambda d: d["draft_log_probs"].__setitem__(1, d["draft_log_probs"][1][:, :5]), "shape"),
    (lambda d: d["target_log_probs"][0].__setitem__((0, 0), np.nan), "NaN"),
    (lambda d: d["target_log_probs"].__setitem__(0, d["target_log_probs"][0] + 0.1), "not normalised"),
    (lambda d: d["tokens"][0].__setitem__(0, V), "outside"),
    (lambda d: d["metadata"].__setitem__("x", object()), "JSON"),
    (lambda d: d["metadata"].__setitem__("vocab_size", V + 1), "disagrees"),
])
def test_writer_rejects(tmp_path, edit, match):
    inputs = _inputs()
    edit(inputs)
    with pytest.raises(ValueError, match=match):
        write_log(tmp_path / "w.npz", **inputs)
    assert not (tmp_path / "w.npz").exists()


def test_writer_rejects_impossible_token(tmp_path):
    inputs = _inputs()
    y = int(inputs["tokens"][0][1])
    row = inputs["target_log_probs"][0][1]
    row[y] = -np.inf
    inputs["target_log_probs"][0][1] = _log_softmax(row)
    with pytest.raises(ValueError, match="target probability 0"):
        write_log(tmp_path / "w.npz", **inputs)


# ----------------------------------------------------------------------------- corrupt files
def _expect(path, match):
    with pytest.raises(LogError, match=match) as info:
        read_log(path)
    assert str(path) in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    with pytest.raises(LogFileNotFoundError, match="not found"):
        read_log(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError):
        read_log(tmp_path / "nope.npz")


def test_not_npz(tmp_path):
    bad = tmp_path / "text.npz"
    bad.write_text("hello, not a log")
    _expect(bad, "zip signature")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _expect(empty, "empty")
    npy = tmp_path / "arr.npz"
    np.save(open(npy, "wb"), np.zeros(3))
    _expect(npy, "zip signature")


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_truncated(good, keep):
    path, _ = good
    data = path.read_bytes()
    cut = path.parent / "cut.npz"
    cut.write_bytes(data[: int(len(data) * keep)])
    _expect(cut, "truncated or corrupt")


def test_corrupt_member(good, tmp_path):
    path, _ = good
    # flip bytes inside the deflated data of the largest member (CRC / zlib error on read)
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.compress_size)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 20
    for j in range(start, start + 16):
        data[j] ^= 0xFF
    bad = tmp_path / "flip.npz"
    bad.write_bytes(bytes(data))
    _expect(bad, "corrupt")


@pytest.mark.parametrize("key", ["tokens", "target_log_probs", "metadata", "format_version", "prompt_offsets"])
def test_missing_key(good, key):
    path, _ = good
    arrays = _arrays(path)
    del arrays[key]
    _expect(_rewrite(path, arrays), f"missing key.*{key}")


def _edited(path, **changes):
    arrays = _arrays(path)
    arrays.update(changes)
    return _rewrite(path, arrays)


def test_wrong_format_version(good):
    path, _ = good
    _expect(_edited(path, format_version=np.array(FORMAT_VERSION + 1)), "format_version 2 is not supported")
    _expect(_edited(path, format=np.array("something-else")), "format is 'something-else'")


def test_metadata_not_json(good):
    path, _ = good
    _expect(_edited(path, metadata=np.array("{not json")), "metadata is not valid JSON")
    _expect(_edited(path, metadata=np.array("[1, 2]")), "metadata must be a JSON object")
    meta = json.loads(str(_arrays(path)["metadata"]))
    meta["vocab_size"] = V + 3
    _expect(_edited(path, metadata=np.array(json.dumps(meta))), "metadata vocab_size")


def test_shape_mismatches(good):
    path, _ = good
    a = _arrays(path)
    _expect(_edited(path, token_offsets=np.array([0, 3, 9])), "token_offsets")
    _expect(_edited(path, token_offsets=np.array([0, 5, 3, 8])), "token_offsets")
    _expect(_edited(path, prompt_offsets=np.array([0, 1, 99])), "prompt_offsets")
    _expect(_edited(path, tokens=a["tokens"][:-1], token_offsets=np.array([0, 3, 7])), "7 tokens but 8 rows")
    _expect(_edited(path, draft_log_probs=a["draft_log_probs"][:, :-1]), "vocabulary mismatch.*V = 7.*V = 6")
    _expect(_edited(path, draft_log_probs=a["draft_log_probs"][:-1]), "8 positions but draft log-probs 7")
    _expect(_edited(path, target_log_probs=a["target_log_probs"][0]), "2-D float")
    _expect(_edited(path, prompt_offsets=np.array([0, 5])), "1 prompts but 2 continuations")
    _expect(_edited(path, token_offsets=np.array([0, 0, 8])), "continuation 0 is empty")


@pytest.mark.parametrize("value,match", [(np.nan, "nan at position 4, token 2"), (np.inf, "inf at position 4")])
def test_nan_inf(good, value, match):
    path, _ = good
    t = _arrays(path)["target_log_probs"].copy()
    t[4, 2] = value
    _expect(_edited(path, target_log_probs=t), "target log-probs hold " + match)
    d = _arrays(path)["draft_log_probs"].copy()
    d[4, 2] = value
    _expect(_edited(path, draft_log_probs=d), "draft log-probs hold")


def test_unnormalised_and_empty_rows(good):
    path, _ = good
    t = _arrays(path)["target_log_probs"].copy()
    t[2] += np.float16(0.01)
    _expect(_edited(path, target_log_probs=t), "position 2 have total mass .* not log-probabilities")
    d = _arrays(path)["draft_log_probs"].copy()
    d[5] = -np.inf
    _expect(_edited(path, draft_log_probs=d), "position 5 are all -inf")


def test_token_ids_out_of_range(good):
    path, _ = good
    a = _arrays(path)
    tok = a["tokens"].copy()
    tok[6] = V
    _expect(_edited(path, tokens=tok), r"tokens\[6\] = 7 is outside the vocabulary \[0, 7\)")
    pr = a["prompt_ids"].copy()
    pr[0] = -1
    _expect(_edited(path, prompt_ids=pr), r"prompt_ids\[0\] = -1")


def test_logged_token_impossible(good):
    path, _ = good
    a = _arrays(path)
    t = a["target_log_probs"].astype(np.float64)
    y = int(a["tokens"][3])
    t[3, y] = -np.inf
    t[3] = _log_softmax(t[3])
    _expect(_edited(path, target_log_probs=t.astype(np.float16)), f"logged token {y} at position 3 has target "
                                                                     f"log-prob -inf")


def test_error_is_value_error(good):
    path, _ = good
    bad = _edited(path, format_version=np.array(0))
    with pytest.raises(ValueError):
        read_log(bad)


def test_compact_size(tmp_path):
    inputs = _inputs(3, lengths=(64,))
    path = write_log(tmp_path / "big.npz", compress=False, **inputs)
    raw = 2 * 64 * V * 2                                  # two float16 arrays
    assert path.stat().st_size < raw + 4096


def test_directory_is_not_a_log(tmp_path):
    _expect(tmp_path, "not a regular file")
