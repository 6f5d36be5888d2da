"""Deterministic drafts on the real SmolLM2 target: ERSD regenerates a log and makes exactly the predicted calls;
transformers' prompt lookup runs on the same prompts; workloads and cost measurement are well formed."""
import numpy as np
import pytest

pytestmark = [pytest.mark.llm, pytest.mark.slow]


@pytest.fixture(scope="module")
def copy_log(default_pair, tmp_path_factory):
    from chansim.llm.logging_run import log_run
    from chansim.llm.workloads import copy_prompts
    from chansim.logs.format import read_log, write_log

    prompts = copy_prompts(default_pair.tokenizer, 2, 48)
    path = tmp_path_factory.mktemp("lookup") / "copy.npz"
    write_log(path, **log_run(default_pair, prompts, 12, 0.5, seed=1, progress=False))
    return read_log(path)


def test_ersd_regenerates_the_log_with_the_predicted_calls(default_pair, copy_log):
    from chansim.llm.lookup import lookup_generate
    from chansim.logs.lookup_predict import lookup_log_calls

    calls = lookup_log_calls(copy_log, "lookup:4")
    for i in range(copy_log.n_sequences):
        out = lookup_generate(default_pair, "ersd", "lookup:4", copy_log.prompts[i], 12, temperature=0.5, seed=1,
                              index=i)
        assert out["tokens"] == copy_log.tokens[i].tolist()
        assert out["proposed"] == calls["proposed"][i].tolist()
        assert out["calls"] == calls["proposed"][i].size


def test_hf_prompt_lookup_and_generate_make_the_asked_tokens(default_pair, copy_log):
    from chansim.llm.lookup import HFLookup

    prompt = copy_log.prompts[0]
    with HFLookup(default_pair, 0.5) as hf:
        plain = hf.run(prompt, 8, seed=0)
        look = hf.run(prompt, 8, seed=0, lookup_tokens=4)
    assert plain["n_tokens"] == look["n_tokens"] == 8
    assert plain["calls"] == 8 and 1 <= look["calls"] <= 8


def test_call_costs_and_workloads(default_pair):
    from chansim.llm.wallclock import measure_call_costs
    from chansim.llm.workloads import COPY_INSTRUCTION, stdlib_functions, workload_prompts

    costs = measure_call_costs(default_pair, [1, 2, 3], [1, 3], repeats=2, context=16)
    assert set(costs["call"]) == {1, 3} and all(len(v) == 2 and min(v) > 0 for v in costs["call"].values())
    assert costs["prefill_per_token"] and costs["context"] == 16
    tok = default_pair.tokenizer
    copy, meta = workload_prompts(tok, "copy", 2, 48)
    assert len(copy) == 2 and COPY_INSTRUCTION.split()[0] in tok.decode(copy[0]) and len(meta["topics"]) == 2
    funcs = stdlib_functions(tok, 3)
    assert len({name for name, _ in funcs}) == 3 and all(src.startswith("def ") for _, src in funcs)
    with pytest.raises(ValueError, match="unknown workload"):
        workload_prompts(tok, "poetry", 2)
    assert np.all([len(p) for p in workload_prompts(tok, "code", 2, 120)[0]])


def test_greedy_log_is_what_greedy_lookup_decoding_generates(default_pair, copy_log):
    """Greedy: sd with prompt lookup outputs the greedy log's text, with exactly the calls predicted from it."""
    from chansim.drafts import call_lengths
    from chansim.llm.lookup import greedy_log, lookup_generate

    prompt = copy_log.prompts[1]
    log = greedy_log(default_pair, [prompt], 10)
    assert log["metadata"]["decoding"] == "greedy"
    text = log["tokens"][0]
    assert text.tolist() == np.argmax(log["target_log_probs"][0], axis=1).tolist()
    out = lookup_generate(default_pair, "sd", "lookup:3", prompt, 10, temperature=0.0)
    assert out["tokens"] == text.tolist()
    assert out["proposed"] == call_lengths("lookup:3", prompt, text)[0].tolist()


def test_bound_log_cost_auto_choose_on_the_real_model(default_pair, copy_log, capsys):
    from chansim.cli import main

    assert main(["bound", "--log", str(copy_log.path), "--cost", "auto", "--threads", "1", "--choose",
                 "--drafts", "lookup:1,lookup:2", "--method", "sd", "--k", "1", "--jobs", "1", "--trials", "50"]) == 0
    text = capsys.readouterr().out
    assert "call cost c(n)/c(1): 1: 1.00, 2: " in text and "c(3)" not in text
    chosen = [line for line in text.splitlines() if line.startswith("chosen: ")]
    assert chosen and chosen[0].split()[1] in ("lookup:1", "lookup:2")
    assert "tokens per call" in text.split("deterministic drafts")[0] or "sd" in text.split("deterministic drafts")[0]
