"""Prompt sets where copying pays (rewrite a Python docs passage, edit standard-library code) and the control.

All text comes from the Python installation itself, nobody here wrote it:

* ``copy`` -- "Repeat the following passage of the Python documentation word for word" + a passage
  cut from :data:`pydoc_data.topics.topics` (evenly spaced topics, first ``passage_tokens`` tokens,
  cut back to a whole word), as a chat turn of the instruct model (its own chat template);
* ``code`` -- "Add a docstring to this function and return the whole function" + the source of a
  function of the standard library (:func:`stdlib_functions`: modules of :data:`CODE_MODULES`,
  functions whose source is ``min_tokens .. max_tokens`` tokens long, in file order), as a chat turn;
* ``open`` -- the control: the first tokens of pydoc topics as plain text to continue
  (:func:`chansim.llm.measure.pydoc_prompts`, the prompts of every earlier validation).

A chat prompt ends with the assistant header, so the continuation is the model's answer.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np

__all__ = ["WORKLOADS", "CODE_MODULES", "COPY_INSTRUCTION", "CODE_INSTRUCTION", "copy_prompts", "code_prompts",
           "stdlib_functions", "workload_prompts"]

WORKLOADS = ("copy", "code", "open")
CODE_MODULES = ("textwrap", "shlex", "fnmatch", "colorsys", "bisect", "heapq", "glob", "calendar", "base64",
                "quopri", "difflib", "html", "ipaddress", "statistics")
COPY_INSTRUCTION = "Repeat the following passage of the Python documentation word for word.\n\n"
CODE_INSTRUCTION = "Add a one-line docstring to this Python function and return the whole function.\n\n"


def _chat(tokenizer, text: str) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(t) for t in ids]
    return [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _whole_words(tokenizer, ids: list[int]) -> str:
    text = tokenizer.decode(ids)
    cut = text.rfind(" ")
    return text[:cut] if cut > len(text) // 2 else text


def copy_prompts(tokenizer, n_prompts: int = 8, passage_tokens: int = 96) -> list[list[int]]:
    """``n_prompts`` chat prompts asking to repeat a pydoc passage of about ``passage_tokens`` tokens."""
    from pydoc_data.topics import topics

    from .measure import pydoc_prompt_keys

    out = []
    for key in pydoc_prompt_keys(n_prompts, passage_tokens):
        ids = tokenizer(topics[key].strip(), add_special_tokens=False)["input_ids"][:passage_tokens]
        out.append(_chat(tokenizer, COPY_INSTRUCTION + _whole_words(tokenizer, ids)))
    return out


def stdlib_functions(tokenizer, n: int, min_tokens: int = 60, max_tokens: int = 160) -> list[tuple[str, str]]:
    """``(qualified name, source)`` of ``n`` top-level functions of :data:`CODE_MODULES` (in that order,
    file order inside a module; at most 2 per module) whose source has ``min_tokens..max_tokens`` tokens."""
    found = []
    for mod in CODE_MODULES:
        spec = importlib.util.find_spec(mod)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        text = Path(spec.origin).read_text(encoding="utf-8")
        taken = 0
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and ast.get_docstring(node) is None:
                src = ast.get_source_segment(text, node)
                if src and min_tokens <= len(tokenizer(src, add_special_tokens=False)["input_ids"]) <= max_tokens:
                    found.append((f"{mod}.{node.name}", src))
                    taken += 1
                    if taken == 2:
                        break
    if len(found) < n:
        raise ValueError(f"only {len(found)} standard-library functions of {min_tokens}-{max_tokens} tokens "
                         f"without a docstring in {', '.join(CODE_MODULES)}; asked for {n}")
    picks = np.unique(np.round(np.linspace(0, len(found) - 1, n)).astype(int))
    return [found[i] for i in picks]


def code_prompts(tokenizer, n_prompts: int = 8, min_tokens: int = 60, max_tokens: int = 160) -> list[list[int]]:
    """``n_prompts`` chat prompts asking to add a docstring to a standard-library function."""
    return [_chat(tokenizer, CODE_INSTRUCTION + "```python\n" + src + "\n```")
            for _, src in stdlib_functions(tokenizer, n_prompts, min_tokens, max_tokens)]


def workload_prompts(tokenizer, workload: str, n_prompts: int, size: int = 96) -> tuple[list[list[int]], dict]:
    """Prompts of a workload and a JSON description (for a log's ``metadata["prompts"]``).

    ``size``: passage tokens (copy), largest function in tokens (code), prompt tokens (open).
    """
    from .measure import pydoc_prompt_keys, pydoc_prompts

    if workload == "copy":
        return copy_prompts(tokenizer, n_prompts, size), {
            "source": "chansim.llm.workloads.copy_prompts", "instruction": COPY_INSTRUCTION,
            "topics": pydoc_prompt_keys(n_prompts, size), "passage_tokens": size}
    if workload == "code":
        funcs = stdlib_functions(tokenizer, n_prompts, min(60, size // 2), size)
        return code_prompts(tokenizer, n_prompts, min(60, size // 2), size), {
            "source": "chansim.llm.workloads.code_prompts", "instruction": CODE_INSTRUCTION,
            "functions": [name for name, _ in funcs], "max_tokens": size}
    if workload == "open":
        return pydoc_prompts(tokenizer, n_prompts, size), {
            "source": "pydoc_data.topics", "topics": pydoc_prompt_keys(n_prompts, size), "prompt_tokens": size}
    raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
