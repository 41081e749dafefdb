"""Tiny exported judges for the end-to-end tests of best-of-n and of the AlpacaEval and FastChat
judging routes through ``judgetrain serve``.

- :func:`reward_export`: a reward judge (Bradley-Terry head on the tiny model), trained two steps.
- :func:`generative_export`: a pairwise ``mtbench-pair-v2`` judge (LoRA on the tiny model, merged),
  trained a step on shipped LLMBar pairs (tests/e2e/test_export.py's recipe). It is barely trained,
  so it runs in seconds: most of what it writes is not a verdict, and the tests compare its raw text.
"""

from __future__ import annotations

from pathlib import Path

from judgetrain.types import Answer, JudgeSample, Label

GENERATIVE_TEMPLATE = "mtbench-pair-v2"
"""The generative judge's template: FastChat's pair-v2 prompt, whose verdicts are [[A]] / [[B]] / [[C]]."""


def labelled_pair(index: int) -> JudgeSample:
    """A pair whose better answer is a sentence on a topic and whose worse one is a refusal."""
    good, bad = f"Topic {index} is common and useful every day.", "I do not know."
    answers = (Answer(good), Answer(bad)) if index % 2 else (Answer(bad), Answer(good))
    return JudgeSample(id=f"r{index:03d}", source="test", question=f"Tell me about topic {index}.", answers=answers,
                       labels={"gpt4": Label(winner="A" if index % 2 else "B")})


def reward_export(root: Path) -> Path:
    """A tiny reward judge trained for two steps and exported (fp32) to ``root/judge``."""
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.export import export
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train

    prepare_dataset([labelled_pair(i) for i in range(16)], root / "pairs", source="test")
    config_file = root / "reward.yaml"
    config_file.write_text("kind: reward\nmodel: {path: tiny}\n", encoding="utf-8")
    config = load_config(config_file, [f"data.datasets={root / 'pairs'}", "data.max_seq_len=128", "optim.max_steps=2",
                                       "optim.per_device_batch_size=4", "logging.stdout=false", "checkpoint.every_steps=0",
                                       f"output_dir={root / 'run'}"])
    return export(train(config).final_dir, root / "judge", dtype="fp32")


def generative_export(root: Path, *, max_steps: int = 1, max_new_tokens: int = 8) -> Path:
    """A tiny pairwise generative judge (:data:`GENERATIVE_TEMPLATE`), LoRA-trained ``max_steps`` steps on
    8 shipped LLMBar pairs (the recipe of tests/e2e/test_export.py) and exported (fp32, merged) to
    ``root/judge``; its card's generation budget is ``max_new_tokens``."""
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.export import export
    from judgetrain.quickstart import read_shipped
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train

    prepare_dataset(read_shipped("train_llmbar.jsonl")[:8], root / "data", format_name=GENERATIVE_TEMPLATE, source="test", seed=0)
    config_path = root / "train.yaml"
    config_path.write_text(
        "model: {path: tiny}\n"
        f"data: {{datasets: [{{path: '{root / 'data'}'}}], format: {GENERATIVE_TEMPLATE}, max_seq_len: 2048}}\n"
        "method: {name: lora, lora: {r: 8, alpha: 16, dropout: 0.0}}\n"
        f"optim: {{lr: 5.0e-3, max_steps: {max_steps}, per_device_batch_size: 4, warmup_ratio: 0.0, schedule: constant}}\n"
        "logging: {stdout: false, every_steps: 100}\n"
        "checkpoint: {every_steps: 0, resume: never}\n"
        f"output_dir: '{root / 'run'}'\n",
        encoding="utf-8",
    )
    checkpoint = train(load_config(config_path)).final_dir
    return export(checkpoint, root / "judge", dtype="fp32", max_new_tokens=max_new_tokens)
