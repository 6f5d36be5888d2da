"""A causal LM run layer by layer: full target, or a layer-skipping draft that shares weights.

:class:`LayerView` drives the submodules of a Hugging Face decoder-only model
(``model.model.embed_tokens``, ``.rotary_emb``, ``.layers``, ``.norm`` and
``model.lm_head``) itself, so that

* a draft can run a *subset* of the decoder layers without copying a single
  weight (self-speculative layer skipping, as in Draft & Verify), and
* the caller supplies explicit position ids and an explicit 4-D attention mask
  (tree attention), instead of the model's own causal mask.

Keys and values live in a :class:`KVStore`: one ``[1, kv_heads, n_entries,
head_dim]`` tensor pair per *original* layer index (each attention module
writes to ``cache.update(..., self.layer_idx)``), so skipped layers simply never
get an entry and indices never shift. Entries may be dropped or reordered
(:meth:`KVStore.keep`) because rotary positions are baked into the keys: the
order of entries is irrelevant as long as the mask matches it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # torch is imported lazily so that doctest collection works without it
    import torch

__all__ = ["KVStore", "LayerView"]


class KVStore:
    """Minimal key/value cache with the ``update`` method transformers' attention calls.

    Every layer holds the same entries in the same order; ``len(store)`` is that
    count. Only layers that are run get tensors.
    """

    def __init__(self) -> None:
        self.keys: dict[int, torch.Tensor] = {}  # layer_idx -> [1, kv_heads, n, head_dim]
        self.values: dict[int, torch.Tensor] = {}
        self.is_compileable = False

    def __len__(self) -> int:
        if not self.keys:
            return 0
        return next(iter(self.keys.values())).shape[-2]

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        """Append ``[1, kv_heads, q, head_dim]`` states; return all keys and values of the layer."""
        if layer_idx in self.keys:
            import torch

            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], key_states], dim=-2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], value_states], dim=-2)
        else:
            self.keys[layer_idx] = key_states
            self.values[layer_idx] = value_states
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:  # for code that asks
        return len(self)

    def keep(self, index: Sequence[int]) -> None:
        """Keep only the entries ``index`` (in that order) in every layer."""
        if len(self) == 0:
            return
        if list(index) == list(range(len(self))):
            return
        if len(index) == 0:
            self.clear()
            return
        import torch

        dev = next(iter(self.keys.values())).device
        idx = torch.as_tensor(list(index), dtype=torch.long, device=dev)
        for layer in self.keys:
            self.keys[layer] = self.keys[layer].index_select(-2, idx)
            self.values[layer] = self.values[layer].index_select(-2, idx)

    def clear(self) -> None:
        self.keys.clear()
        self.values.clear()


def _cache_kwarg(layer) -> str:
    """Name of the decoder layer's cache argument (``cache`` in transformers 5, before: ``past_key_value(s)``)."""
    import inspect

    params = inspect.signature(layer.forward).parameters
    for name in ("cache", "past_key_values", "past_key_value"):
        if name in params:
            return name
    raise NotImplementedError(f"{type(layer).__name__}.forward takes no cache argument")


class LayerView:
    """Run a decoder-only causal LM with a chosen subset of its decoder layers.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM whose backbone ``model.model`` has ``embed_tokens``,
        ``rotary_emb``, ``layers`` and ``norm`` and whose head is ``model.lm_head``
        (Llama, Mistral, Qwen2, SmolLM, ... in transformers 5).
    layers : sequence of int, optional
        Indices of the decoder layers to run, in order. Default: all.

    Notes
    -----
    No weights are copied: the view holds references to the model's modules.
    Architectures that scale embeddings in the backbone's ``forward`` (e.g.
    Gemma) or use per-layer attention types are not supported.
    """

    def __init__(self, model, layers: Sequence[int] | None = None) -> None:
        backbone = getattr(model, "model", None)
        needed = ("embed_tokens", "rotary_emb", "layers", "norm")
        if backbone is None or not all(hasattr(backbone, a) for a in needed) or not hasattr(model, "lm_head"):
            raise NotImplementedError(
                f"{type(model).__name__} is not a supported decoder-only layout "
                "(need model.model.{embed_tokens, rotary_emb, layers, norm} and model.lm_head)")
        model_type = str(getattr(getattr(model, "config", None), "model_type", ""))
        if model_type.startswith("gemma"):  # embeddings are scaled inside the backbone's forward
            raise NotImplementedError(f"model type {model_type!r} is not supported by LayerView")
        n_layers = len(backbone.layers)
        layers = list(range(n_layers)) if layers is None else [int(i) for i in layers]
        if not layers:
            raise ValueError("a LayerView needs at least one decoder layer")
        bad = [i for i in layers if not 0 <= i < n_layers]
        if bad:
            raise ValueError(f"layer indices {bad} out of range for a model with {n_layers} layers")
        if len(set(layers)) != len(layers):
            raise ValueError(f"duplicate layer indices in {layers}")
        self.model = model
        self.layers = layers
        self._cache_kw = _cache_kwarg(backbone.layers[0])
        self.n_model_layers = n_layers

    @property
    def skipped_layers(self) -> list[int]:
        """Decoder layers of the underlying model that this view does not run."""
        kept = set(self.layers)
        return [i for i in range(self.n_model_layers) if i not in kept]

    @property
    def vocab_size(self) -> int:
        """Number of output logits V."""
        return int(self.model.lm_head.out_features)

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm_head.weight.dtype

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
                visible: torch.Tensor, cache: KVStore | None = None) -> torch.Tensor:
        """Logits of new tokens given explicit positions and visibility.

        Parameters
        ----------
        input_ids : torch.LongTensor, shape (q,)
            New tokens.
        position_ids : torch.LongTensor, shape (q,)
            Absolute position of each new token.
        visible : torch.BoolTensor, shape (q, len(cache) + q)
            ``visible[i, j]`` is True iff new token ``i`` attends to cache entry
            ``j`` (``j < len(cache)``) or to new token ``j - len(cache)``.
            A token must see itself.
        cache : KVStore, optional
            Keys/values of earlier tokens; the new tokens are appended to it.

        Returns
        -------
        torch.Tensor, shape (q, V)
            Raw logits (float32) after each new token.
        """
        import torch

        with torch.no_grad():
            return self._forward(torch, input_ids, position_ids, visible, cache)

    def _forward(self, torch, input_ids, position_ids, visible, cache):
        backbone = self.model.model
        dev = self.device
        ids = input_ids.to(dev).view(1, -1)  # [1, q]
        pos = position_ids.to(dev).view(1, -1)  # [1, q]
        hidden = backbone.embed_tokens(ids)  # [1, q, d]
        rope = backbone.rotary_emb(hidden, position_ids=pos)
        mask = torch.zeros(visible.shape, dtype=hidden.dtype, device=dev)
        mask.masked_fill_(~visible.to(dev), torch.finfo(hidden.dtype).min)
        mask = mask[None, None]  # [1, 1, q, k]
        for i in self.layers:
            hidden = backbone.layers[i](hidden, attention_mask=mask, position_ids=pos,
                                        position_embeddings=rope, use_cache=cache is not None,
                                        **{self._cache_kw: cache})
            if isinstance(hidden, tuple):  # older layer signatures
                hidden = hidden[0]
        hidden = backbone.norm(hidden)
        return self.model.lm_head(hidden)[0].float()  # [q, V]
