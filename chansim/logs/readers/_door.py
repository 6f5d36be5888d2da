r"""The input door for log-prob records: one small declared schema, one-line errors.

Every reader of :mod:`chansim.logs.readers` takes its values through these checks, so a
record is either read exactly as the tool meant it or refused with a ``ValueError`` that
names the file, the response, the position and the field, e.g.::

    t.jsonl: response 0, position 3, top_logprobs[1].logprob: must be a number, got str '-0.5'

The schema of one scored position (every tool's shape maps onto it):

========================= ==================================================================
field                     rule
========================= ==================================================================
token id                  JSON integer (not bool, not float), :math:`0 \le id < V` (V unknown:
                          :math:`< 2^{31}`); vLLM's ``"token_id:N"`` strings and JSON object keys
                          ``"N"`` of id-keyed dicts are ids
token string              JSON string (ambiguity rules: :func:`chansim.logs.truncated.record_head`)
log-prob                  JSON number, not NaN, :math:`\le` :data:`LOGPROB_SLACK` (float32 rounding
                          of 0; clamped to 0); ``-inf`` and the sentinels
                          :math:`\le` :data:`SENTINEL` (vLLM's clamp of ``-inf`` is ``-9999.0``,
                          llama.cpp writes the lowest float for ``log 0``) mean probability 0
probability               JSON number in :math:`[0, 1 + 10^{-6}]` (llama.cpp ``prob``); read as
                          its log
rank                      JSON integer :math:`\ge 1`
========================= ==================================================================
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

__all__ = ["Where", "SENTINEL", "LOGPROB_SLACK", "load_json_records"]

#: log-probs at or below this are read as -inf (probability 0): vLLM clamps -inf to -9999.0
SENTINEL = -9999.0
#: positive log-probs up to this are float32 rounding of 0 and read as 0; larger ones are refused
LOGPROB_SLACK = 1e-6
_ID_LIMIT = 2 ** 31
_TOKEN_ID = re.compile(r"^token_id:(-?\d+)$")


class Where:
    """Where a value sits: file, response, position, field -- turned into the error's prefix."""

    def __init__(self, path, response=None, position=None, vocab_size=None):
        self.path, self.response, self.position, self.vocab_size = path, response, position, vocab_size

    def at(self, position) -> "Where":
        return Where(self.path, self.response, position, self.vocab_size)

    def error(self, field: str, problem: str) -> ValueError:
        parts = [str(self.path)]
        if self.response is not None:
            parts.append(f"response {self.response}")
        if self.position is not None:
            parts.append(f"position {self.position}")
        return ValueError(f"{', '.join(parts)}, {field}: {problem}")

    # ---- typed getters ------------------------------------------------------------------
    def obj(self, value, field: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(field, f"must be a JSON object, got {_show(value)}")
        return value

    def lst(self, value, field: str) -> list:
        if not isinstance(value, list):
            raise self.error(field, f"must be a JSON list, got {_show(value)}")
        return value

    def get(self, d: dict, key: str, field: str):
        if key not in d:
            raise self.error(field, f"missing (the object has {sorted(d)[:8]})")
        return d[key]

    def logprob(self, value, field: str) -> float:
        """A log-probability: finite number <= LOGPROB_SLACK (clamped to 0), or -inf / a sentinel (-> -inf)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(field, f"must be a number, got {_show(value)}")
        v = float(value)
        if math.isnan(v):
            raise self.error(field, "is NaN")
        if v > LOGPROB_SLACK:
            raise self.error(field, f"log-probability {v!r} > 0 is not a log-probability")
        if v <= SENTINEL:
            return -math.inf
        return min(v, 0.0)

    def prob(self, value, field: str) -> float:
        """A probability in [0, 1] (llama.cpp ``prob``), returned as its log (0 -> -inf)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(field, f"must be a number, got {_show(value)}")
        v = float(value)
        if not (0.0 <= v <= 1.0 + 1e-6):
            raise self.error(field, f"probability {v!r} is outside [0, 1]")
        return math.log(v) if v > 0 else -math.inf

    def token_id(self, value, field: str) -> int:
        """A token id: a JSON integer (or vLLM ``"token_id:N"``, or a dict key ``"N"``) in [0, V)."""
        if isinstance(value, str):
            m = _TOKEN_ID.match(value) or re.fullmatch(r"(-?\d+)", value)
            if not m:
                raise self.error(field, f"must be a token id, got {_show(value)}")
            value = int(m.group(1))
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(field, f"must be an integer token id, got {_show(value)}")
        limit = self.vocab_size if self.vocab_size is not None else _ID_LIMIT
        if not 0 <= value < limit:
            raise self.error(field, f"token id {value} is outside [0, {limit})"
                             + ("" if self.vocab_size is not None else " (no --vocab-size given)"))
        return int(value)

    def token_key(self, value, field: str):
        """A vLLM/OpenAI ``token``: ``"token_id:N"`` -> int N, any other string -> the string itself."""
        if not isinstance(value, str):
            raise self.error(field, f"must be a string, got {_show(value)}")
        if _TOKEN_ID.match(value):
            return self.token_id(value, field)
        return value

    def text(self, value, field: str) -> str:
        if not isinstance(value, str):
            raise self.error(field, f"must be a string, got {_show(value)}")
        return value

    def rank(self, value, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(field, f"rank must be an integer >= 1, got {_show(value)}")
        return int(value)

    def count(self, value, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(field, f"must be an integer >= 0, got {_show(value)}")
        return int(value)


def _show(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__ if not isinstance(value, (dict, list)) else ('object' if isinstance(value, dict) else 'list')} {text}"


class _DuplicateKey(Exception):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs):
    """``json`` object hook: a key given twice is an error (json.loads would keep the last one silently)."""
    out = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _duplicate_message(key) -> str:
    return (f"a JSON object lists the key {key!r} twice (in a top_logprobs object: two different token ids "
            f"that decode to the same string, merged by the server); the records cannot say which id is which "
            f"-- return token ids (vLLM: --return-tokens-as-token-ids)")


def load_json_records(path) -> list:
    """The JSON objects of a records file: JSON lines (one response per line) or one JSON document.

    A document may be one object or a list of objects. Every item must be a JSON object.

    Raises
    ------
    ValueError
        Missing file, a folder, an unreadable file, not UTF-8, not JSON, or an item that is
        not an object (one line naming the file and the line or item).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: records file not found")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a records file")
    try:
        text = path.read_text(encoding="utf-8-sig")                # a byte-order mark is not an error
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the records file ({err.strerror or type(err).__name__})") from None
    if not text.strip():
        raise ValueError(f"{path}: the records file is empty")
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys)
        items, where = (doc if isinstance(doc, list) else [doc]), "item"
    except _DuplicateKey as dup:
        raise ValueError(f"{path}: {_duplicate_message(dup.key)}") from None
    except json.JSONDecodeError:
        items, lines = [], []
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    items.append(json.loads(line, object_pairs_hook=_unique_keys))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {i + 1} is not JSON ({err.msg}, column {err.colno})") from None
                except _DuplicateKey as dup:
                    raise ValueError(f"{path}: line {i + 1}: {_duplicate_message(dup.key)}") from None
                lines.append(i + 1)
        where = "line"
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    if not items:
        raise ValueError(f"{path}: no records (an empty JSON list)")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            num = lines[i] if where == "line" else i
            raise ValueError(f"{path}: {where} {num} is {_show(item)}, expected a JSON object (one response of "
                             f"a server: vLLM/OpenAI, llama.cpp, TGI or SGLang)")
    return items
