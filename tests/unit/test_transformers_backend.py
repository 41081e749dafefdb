"""The transformers backend with the tiny random model: batched greedy outputs equal one-at-a-time
outputs, rows are left-padded, stop strings end generation, verdict log-probabilities equal a manual
forward pass, and the Judge runs end to end on it."""

import pytest
import torch

from judgetrain.formats import judgelm
from judgetrain.judging import Judge, make_backend, per_order
from judgetrain.judging.backends.base import Decoding, Request
from judgetrain.judging.backends.transformers_backend import TransformersBackend, option_first_tokens, prompt_text_of
from judgetrain.types import Answer, JudgeSample

JUDGELM = next(f for f in judgelm.FORMATS if f.name == "judgelm-v1")
OPTIONS = {"A": "1", "B": "2", "tie": "Tie"}


def chat(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "system", "content": "You judge."}, {"role": "user", "content": text})


PROMPTS = [chat("short"), chat("a much longer prompt " * 9), chat("medium length prompt " * 3),
           chat("x"), chat("another fairly long one " * 6), chat("two words")]


@pytest.fixture()
def backend(tiny_model, tiny_tokenizer):
    return TransformersBackend(tiny_model, tiny_tokenizer, batch_size=4)


def test_batched_greedy_equals_one_at_a_time(backend):
    decoding = Decoding(max_new_tokens=10)
    requests = [Request(messages=m, decoding=decoding, verdict_options=OPTIONS) for m in PROMPTS]
    batched = backend.generate(requests)
    singles = [backend.generate([r])[0] for r in requests]
    assert [c.text for c in batched] == [c.text for c in singles]  # and so in request order
    assert len({c.text for c in batched}) > 1  # different prompts, different outputs: order is checked
    for b, s in zip(batched, singles):
        assert b.tokens_in == s.tokens_in and b.tokens_out == s.tokens_out == 10
        assert b.prompt_text == s.prompt_text and b.prompt_text.endswith("<|im_start|>assistant\n")
        assert b.verdict_logprobs.keys() == s.verdict_logprobs.keys() == OPTIONS.keys()
        for key in OPTIONS:
            assert b.verdict_logprobs[key] == pytest.approx(s.verdict_logprobs[key], abs=1e-4)


def test_batches_are_left_padded_and_length_sorted(backend, tiny_tokenizer, monkeypatch):
    seen = []
    original = backend.model.generate

    def recording_generate(*args, **kwargs):
        seen.append((kwargs["input_ids"].clone(), kwargs["attention_mask"].clone()))
        return original(*args, **kwargs)

    monkeypatch.setattr(backend.model, "generate", recording_generate)
    backend.generate([Request(messages=m, decoding=Decoding(max_new_tokens=2)) for m in PROMPTS])
    assert [ids.shape[0] for ids, _ in seen] == [4, 2]
    lengths = [mask.sum(dim=1).tolist() for _, mask in seen]
    flat = lengths[0] + lengths[1]
    assert flat == sorted(flat, reverse=True)  # longest first
    for ids, mask in seen:
        assert bool(mask[:, -1].all())  # every row ends with a real token: padding is on the left
        for row_ids, row_mask in zip(ids, mask):
            pad = int((row_mask == 0).sum())
            assert bool((row_mask[:pad] == 0).all()) and bool((row_ids[:pad] == tiny_tokenizer.pad_token_id).all())


def test_stop_strings_end_generation_and_are_cut(backend):
    request = Request(messages=PROMPTS[1], decoding=Decoding(max_new_tokens=16))
    full = backend.generate([request])[0].text
    # A plain-letter piece of what the model writes anyway, not at the very start.
    start = next(i for i in range(2, len(full) - 3) if full[i:i + 3].isascii() and full[i:i + 3].isalpha())
    stop = full[start:start + 3]
    assert full.find(stop) >= 1
    stopped = backend.generate([Request(messages=PROMPTS[1], decoding=Decoding(max_new_tokens=16, stop=(stop,)))])[0]
    assert stopped.text == full[: full.find(stop)]
    assert stopped.tokens_out < 16


def test_verdict_logprobs_equal_a_forward_pass(backend, tiny_model, tiny_tokenizer):
    [completion] = backend.generate([Request(messages=PROMPTS[2], decoding=Decoding(max_new_tokens=3), verdict_options=OPTIONS)])
    prompt = prompt_text_of(tiny_tokenizer, PROMPTS[2])
    ids = tiny_tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(tiny_model(input_ids=ids).logits[0, -1].float(), dim=-1)
    tokens = option_first_tokens(tiny_tokenizer, prompt, OPTIONS)
    assert len(set(tokens.values())) == 3
    for verdict, token in tokens.items():
        assert completion.verdict_logprobs[verdict] == pytest.approx(float(logprobs[token]), abs=1e-4)


def test_options_sharing_a_first_token_keep_the_shortest(tiny_tokenizer):
    options = {str(s): str(s) for s in range(1, 11)}
    tokens = option_first_tokens(tiny_tokenizer, "score:", options)
    assert len(set(tokens.values())) == len(tokens)
    if tiny_tokenizer("10", add_special_tokens=False)["input_ids"][0] == tokens.get("1"):
        assert "10" not in tokens


def test_judge_both_orders_end_to_end_on_the_tiny_model(tiny_model, tiny_tokenizer):
    backend = TransformersBackend(tiny_model, tiny_tokenizer, batch_size=3)
    samples = [JudgeSample(id=f"t{i}", source="test", question=f"What is {i} plus {i}?",
                           answers=(Answer(str(2 * i)), Answer(f"I think it is {i}")))
               for i in range(3)]
    judgments = Judge(JUDGELM, backend, both_orders=True).judge(samples)
    assert [j.sample_id for j in judgments] == ["t0", "t1", "t2"]
    for judgment in judgments:
        orders = [o.to_dict() for o in per_order(judgment)]
        assert [o["swapped"] for o in orders] == [False, True]
        for order in orders:
            assert order["backend"] == "transformers" and order["tokens_in"] > 0
            assert order["prompt_text"].startswith("<|im_start|>system")
            assert order["decoding"]["stop"] == ["\n"] and order["decoding"]["max_new_tokens"] == 32
            assert abs(sum(order["verdict_probabilities"].values()) - 1) < 1e-6
            # A random model rarely writes a score line; whatever it wrote is a verdict or a counted failure.
            assert (order["verdict"] is None) == (order["parse_failure"] is not None)
        assert judgment.both_orders.outcome in ("A", "B", "tie", "parse_failure")


def test_make_backend_specs():
    backend = make_backend("tiny", batch_size=2)
    assert isinstance(backend, TransformersBackend) and backend.model_id == "tiny" and backend.batch_size == 2
    assert make_backend("hf:tiny", batch_size=None).batch_size == 8  # None options are dropped
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("ollama:llama3")
    with pytest.raises(ValueError, match="model id"):
        make_backend("openai:")


def test_judge_cli_writes_judgments_and_a_rerun_is_served_from_the_cache(tmp_path, capsys):
    import json

    from judgetrain.cli import main

    rows = [JudgeSample(id=f"c{i}", source="test", question=f"Name a colour ({i}).",
                        answers=(Answer("Blue."), Answer("Seven" * (i + 1)))).to_dict() for i in range(2)]
    data = tmp_path / "samples.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["judge", "--input", str(data), "--format", "judgelm-v1", "--backend", "hf", "--model", "tiny",
            "--both-orders", "--cache", str(tmp_path / "cache.sqlite"), "--no-progress", "--out", str(tmp_path / "j.jsonl")]
    assert main(args) == 0
    first = capsys.readouterr().out
    written = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert [w["sample_id"] for w in written] == ["c0", "c1"]
    assert all(w["both_orders"] is not None for w in written)
    assert "judged 2 samples" in first and "calls: 4 (0 from the cache)" in first and "consistency" in first
    assert main(args) == 0
    assert "calls: 4 (4 from the cache)" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({**rows[1], "answers": []}) + "\n")
    assert main([*args[:2], str(bad), *args[3:]]) == 1
    assert f"{bad}:2" in capsys.readouterr().err
