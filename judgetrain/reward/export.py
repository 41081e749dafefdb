"""Export a reward judge (a ``kind: reward`` checkpoint) to a dir that plain transformers and vLLM load.

The dir holds the sequence-classification model (``AutoModelForSequenceClassification`` loads it;
``vllm serve DIR --runner pooling`` serves it), the tokenizer with its chat template (the scored
conversation is that template's), ``judge_card.json`` (:mod:`judgetrain.card`) and a README. The card has the generative
card's sections, filled for a judge that writes no text (template ``reward-chat-v1``, no decoding
budget, both orders identical by construction), plus ``kind: "reward"`` and a ``reward`` section:
the tie margin, the token budget of a scored conversation and how a verdict is read. The run's
evaluation results are copied into the export, at their paths in the run dir, as the generative
export does (:mod:`judgetrain.export_files`).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judgetrain.card import (CardFormat, EvaluationEntry, JudgeCard, ModelInfo, ParserSettings, RewardSettings, Serving, TiePolicy,
                             TrainingData, write_card)
from judgetrain.export_files import copy_eval_results, readable_by_all
from judgetrain.reward.data import REWARD_TEMPLATE


def build_reward_card(*, name: str, record: dict[str, Any], base_model: str, method: str, dtype: str, tie_margin: float,
                      max_seq_len: int, evaluation: list[dict[str, Any]], tie_margin_source: str) -> JudgeCard:
    """The judge card of a reward judge."""
    import judgetrain

    return JudgeCard(
        kind="reward",
        name=name,
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        judgetrain_version=judgetrain.__version__,
        format=CardFormat(family="reward", template=REWARD_TEMPLATE, version=1, protocols=("pairwise", "single"),
                          with_reference=False, multi_turn=True, verdict_first=False),
        # Nothing is parsed: the verdict is read off two numbers.
        parser=ParserSettings(mode="strict", modes=("strict",)),
        score_scale=None,
        tie_policy=TiePolicy(both_orders=True, disagreement="tie", by_construction=True),
        decoding=None,
        reward=RewardSettings(
            tie_margin=float(tie_margin),
            tie_margin_source=tie_margin_source,
            max_seq_len=int(max_seq_len),
            verdict="A if r_A - r_B > tie_margin, B if r_A - r_B < -tie_margin, else tie",
            scored_text="the chat template over the user turns and one answer's assistant turns",
        ),
        model=ModelInfo(base=base_model, method=method, lora_merged=method == "lora", dtype=dtype,
                        global_step=record.get("global_step"), head="sequence classification, 1 output"),
        training_data=TrainingData(manifest_hashes=dict(record.get("manifest_hashes") or {}), git_revision=record.get("git_revision")),
        evaluation=tuple(EvaluationEntry(**entry) for entry in evaluation),
        serving=Serving(chat_template="chat_template.jinja", vllm="vllm serve <this dir> --runner pooling",
                        judgetrain="judgetrain serve --model <this dir>", route="/pooling"),
    )


def reward_card_markdown(card: JudgeCard) -> str:
    """The README.md model card of a reward export."""
    assert card.reward is not None, "a reward card"
    reward, model = card.reward, card.model
    lines = [
        "---", "library_name: transformers", "pipeline_tag: text-classification", "tags: [judgetrain, reward-model, llm-judge]",
        "---", "", f"# {card.name}", "",
        f"A reward judge trained with judgetrain {card.judgetrain_version} from `{model.base}` ({model.method}; "
        f"{model.global_step} optimizer steps; weights {model.dtype}): one score per answer, Bradley-Terry.",
        "", f"- Scored text: {reward.scored_text} (`{card.template}`), at most {reward.max_seq_len} tokens.",
        f"- Verdict: {reward.verdict}; tie margin {reward.tie_margin:g} ({reward.tie_margin_source}).",
        "- The order of two answers cannot change a verdict: each answer is scored alone.",
        "", "## Use", "", "```python", "import judgetrain",
        "judge = judgetrain.Judge.from_card(\"<this dir>\")   # a RewardJudge; or a server's URL",
        "judge.compare(\"What is 2+2?\", \"4\", \"5\").winner",
        "```", "", f"Serve it: `{card.serving.vllm}` (GPU) or `judgetrain serve --model <this dir>` (CPU).", "",
        "## Evaluation", "",
    ]
    for entry in card.evaluation:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in entry.metrics.items() if isinstance(v, float))
        lines.append(f"- {entry.benchmark or entry.path}: {shown}")
    if not card.evaluation:
        lines.append("No evaluation results were found in the run dir.")
    return "\n".join(lines) + "\n"


def export_reward(checkpoint: Path, out: Path, config, record: dict[str, Any], *, dtype: str, name: str | None,
                  tie_margin: float | None) -> Path:
    """Export a reward checkpoint (called by :func:`judgetrain.export.export` for ``kind: reward`` runs).

    ``tie_margin`` None takes the one the run chose on its dev split (``tie_margin.json`` beside the
    checkpoint, written by :func:`judgetrain.reward.margin.save_tie_margin`), else 0. The evaluation
    results in the run dir (the checkpoint's parent) are copied into the export and named in the card."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from judgetrain.atomic import make_staging_dir, replace_dir
    from judgetrain.models import load_tokenizer, torch_dtype
    from judgetrain.reward.margin import read_tie_margin

    source = "given at export"
    if tie_margin is None:
        chosen = read_tie_margin(checkpoint)
        tie_margin, source = (chosen["tie_margin"], f"chosen on {chosen['source']}") if chosen else (0.0, "default: no tie margin chosen")
    if (checkpoint / "adapter_config.json").is_file():
        from peft import AutoPeftModelForSequenceClassification

        model = AutoPeftModelForSequenceClassification.from_pretrained(str(checkpoint), dtype=torch.float32).merge_and_unload()
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint), dtype=torch.float32, use_safetensors=True)
    tokenizer = load_tokenizer(str(checkpoint) if (checkpoint / "tokenizer_config.json").is_file() else
                               (config.model.tokenizer or config.model.path))
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{checkpoint}: the tokenizer has no chat template, so a server could not rebuild the scored conversation")
    target_dtype = torch_dtype(dtype)
    model = model.to(target_dtype)
    model.config._name_or_path = name or out.name
    model.config.pad_token_id = tokenizer.pad_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(out.parent, f".{out.name}.tmp-")
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        card = build_reward_card(name=name or out.name, record=record, base_model=config.model.path, method=config.method.name,
                                 dtype=str(target_dtype).removeprefix("torch."), tie_margin=tie_margin,
                                 max_seq_len=config.data.max_seq_len, evaluation=copy_eval_results(checkpoint.parent, staging),
                                 tie_margin_source=source)
        write_card(staging, card)
        (staging / "README.md").write_text(reward_card_markdown(card), encoding="utf-8")
        readable_by_all(staging)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


__all__ = ["build_reward_card", "reward_card_markdown", "export_reward"]
