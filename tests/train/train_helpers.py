"""Helpers of the training tests: small prepared dirs of judge samples with a tiny-tokenizer
``tokenized/`` copy, run overrides, and readers of a run's results.

The samples are pairwise judge samples whose target is a JudgeLM-style judgment ("8 3" then a short
critique). They are tokenized here with :func:`judgetrain.data.tokenize.encode_messages` over a fixed
system + user prompt, so the training tests depend on the tokenizer and the loss mask only, not on
any template's wording; the prepared dir records ``tokenizer: tiny`` so training reuses the rows.
"""

from __future__ import annotations

import random
from pathlib import Path

import datasets

from judgetrain.data.prepared import TOKENIZED_DIR, Manifest, Settings, write_samples
from judgetrain.data.tokenize import encode_messages
from judgetrain.types import Answer, JudgeSample, Label

TOPICS = ("rain", "bread", "rivers", "chess", "glass", "bees", "maps", "salt", "tides", "clocks", "ink", "wool")


def judge_sample(index: int) -> JudgeSample:
    """A deterministic pairwise sample; answer lengths vary so rows have different lengths."""
    rng = random.Random(index)
    topic = TOPICS[index % len(TOPICS)]
    good = f"{topic.capitalize()} " + " ".join(rng.choice(TOPICS) for _ in range(3 + index % 7)) + "."
    bad = "I do not know." if index % 2 else f"{topic} is " + "very " * (1 + index % 4) + "odd."
    winner_first = index % 3 != 0
    answers = (Answer(good, model="m1"), Answer(bad, model="m2")) if winner_first else (Answer(bad, model="m1"), Answer(good, model="m2"))
    scores = (8.0, 3.0) if winner_first else (3.0, 8.0)
    better = 1 if winner_first else 2
    judgment = f"{scores[0]:g} {scores[1]:g}\nAssistant {better} explains {topic} better."
    return JudgeSample(
        id=f"s{index:04d}", source="test", question=f"Explain {topic} in one sentence.", answers=answers,
        labels={"gpt4": Label(winner="A" if winner_first else "B", scores=scores, scale=(1, 10))},
        judgment=judgment, meta={"judgment_format": "judgelm-v1"},
    )


def messages_of(sample: JudgeSample) -> list[dict[str, str]]:
    user = (f"[Question]\n{sample.question}\n\n[Assistant 1]\n{sample.answers[0].text}\n\n"
            f"[Assistant 2]\n{sample.answers[1].text}\n\nScore both assistants from 1 to 10.")
    return [{"role": "system", "content": "You are a fair judge."}, {"role": "user", "content": user},
            {"role": "assistant", "content": sample.judgment}]


def write_prepared_dir(out: Path, samples: list[JudgeSample], tokenizer, *, max_seq_len: int = 512,
                       tokenizer_name: str = "tiny") -> Path:
    """A prepared dir (manifest, sample shards, tokenized/) for ``samples`` tokenized with ``tokenizer``
    (recorded under ``tokenizer_name``, the name training loads it by)."""
    rows = {"id": [], "input_ids": [], "labels": [], "length": []}
    for sample in samples:
        input_ids, labels = encode_messages(messages_of(sample), tokenizer)
        assert len(input_ids) <= max_seq_len
        rows["id"].append(sample.id)
        rows["input_ids"].append(input_ids)
        rows["labels"].append(labels)
        rows["length"].append(len(input_ids))
    out.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows).save_to_disk(str(out / TOKENIZED_DIR))
    Manifest(
        source="test",
        samples=write_samples(samples, out),
        settings=Settings(format="judgelm-v1", tokenizer=tokenizer_name, max_seq_len=max_seq_len),
        tokenized={"path": TOKENIZED_DIR, "max_seq_len": max_seq_len, "num_tokenized": len(samples)},
    ).write(out)
    return out


def base_overrides(prepared: Path, output_dir: Path, **extra) -> list[str]:
    """Overrides for a fast tiny-model run on ``prepared``; ``extra`` adds or replaces keys."""
    settings = {
        "model.path": "tiny", "data.datasets": str(prepared), "data.max_seq_len": 512, "optim.lr": 3e-3,
        "optim.schedule": "constant", "optim.warmup_ratio": 0.0, "optim.per_device_batch_size": 4,
        "optim.max_steps": 10, "optim.seed": 0, "logging.every_steps": 1, "logging.stdout": False,
        "checkpoint.every_steps": 0, "output_dir": str(output_dir),
    }
    settings.update({key.replace("__", "."): value for key, value in extra.items()})
    return [f"{key}={value}" for key, value in settings.items()]


def logged_losses(log_history: list[dict]) -> list[float]:
    """The per-step training losses of a Trainer log history (logging every step)."""
    return [entry["loss"] for entry in log_history if "loss" in entry]


def load_state_dict(directory: Path) -> dict:
    """The tensors of ``directory/model.safetensors``."""
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))
