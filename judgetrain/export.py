"""``judgetrain export``: a training checkpoint → a judge dir that plain transformers and ``vllm serve`` load.

    judgetrain export --checkpoint RUN/final --out judges/my-judge [--no-merge-lora] [--dtype bf16|fp16|fp32]
                      [--aggregation verdicts|probabilities] [--tie-margin M] [--format NAME]

The judge template is the one the checkpoint records it was trained with (``format`` in its
``judgetrain_checkpoint.json``); ``--format`` overrides it, and a checkpoint that records none
(written by an earlier judgetrain) needs it.

The export dir holds:

- ``config.json`` + ``model.safetensors`` (a LoRA checkpoint is merged into its base with peft's
  ``merge_and_unload``, so nothing but transformers is needed to load it), ``generation_config.json``
  (greedy, with the judge's generation budget);
- the tokenizer files and its chat template (``chat_template.jinja``): the prompt a server builds from
  the judge's messages is the prompt it was trained on;
- ``judge_card.json``: how to talk to the judge — format family, template name and version, protocol,
  parser modes, score scale, tie policy (both orders, disagreement policy, aggregation and tie margin),
  default decoding, the manifest hash of every training set and
  the evaluation results found in the run dir (see :func:`build_card`; written and read by
  :mod:`judgetrain.card`), each ``results.json`` copied into the export at its path in the run dir;
- ``README.md``: a model card.

Everything is written to a temp dir beside ``--out`` and renamed into place, so ``--out`` is always a
whole export. ``AutoModelForCausalLM.from_pretrained(out)`` / ``AutoTokenizer.from_pretrained(out)``
load it; ``vllm serve out`` serves it; ``judgetrain.Judge.from_card(out)`` judges with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judgetrain.card import (CARD_FILE, CardFormat, EvaluationEntry, JudgeCard, ModelInfo, ParserSettings, Serving, TiePolicy,
                             TrainingData, read_card, write_card)
# Shared with the reward export, which must not import this module (it imports the reward export).
from judgetrain.export_files import copy_eval_results, find_eval_results, readable_by_all

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint dir of a training run (RUN/final or RUN/checkpoint-N)")
    parser.add_argument("--out", required=True, help="the export dir to write (replaced when it is an earlier export)")
    parser.add_argument("--merge-lora", action=argparse.BooleanOptionalAction, default=True,
                        help="merge a LoRA adapter into its base weights (default); --no-merge-lora keeps the adapter (peft loads it)")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="bf16",
                        help="dtype of the saved weights (default bf16: half the size; merging is done in fp32 first)")
    parser.add_argument("--format", dest="format_name", default=None,
                        help="the judge template the model was trained with; default: the one the checkpoint records")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="the card's default generation budget (default: the format's)")
    parser.add_argument("--name", default=None, help="the judge's name in the card and README (default: the --out dir's name)")
    parser.add_argument("--aggregation", choices=("verdicts", "probabilities"), default="verdicts",
                        help="how the card's judge combines the two answer orders of a pair: their verdicts (default), or the mean of "
                             "their verdict probabilities, which is position-free (needs a verdict-first format with winner options)")
    parser.add_argument("--tie-margin", type=float, default=None,
                        help="with --aggregation probabilities: a pair is a tie when |P(A) - P(B)| <= this (default 0; "
                             "choose it on a dev split with judgetrain.judging.judge.choose_tie_margin). A reward judge: "
                             "a pair is a tie when |r_A - r_B| <= this (default: the margin the run chose on its held-out pairs)")


def run(args: argparse.Namespace) -> int:
    out = export(args.checkpoint, args.out, merge_lora=args.merge_lora, dtype=args.dtype, format_name=args.format_name,
                 max_new_tokens=args.max_new_tokens, name=args.name, aggregation=args.aggregation, tie_margin=args.tie_margin)
    card = read_card(out)
    print(f"exported {args.checkpoint} -> {out} (template {card.template}, dtype {card.model.dtype}, "
          f"merged LoRA: {card.model.lora_merged})")
    print(f"  judge: judgetrain.Judge.from_card({str(out)!r}); serve: {(card.serving.vllm or '').replace('<this dir>', str(out))}")
    return 0


# --- reading the run ---------------------------------------------------------------------------


def _run_config(checkpoint: Path):
    from judgetrain.train.checkpoint import CONFIG_FILE
    from judgetrain.train.config import load_config

    path = checkpoint / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{checkpoint}: no {CONFIG_FILE}; export a checkpoint written by `judgetrain train` (RUN/final or RUN/checkpoint-N)")
    return load_config(path)


def training_format_name(record: dict[str, Any], checkpoint: Path) -> str:
    """The template a checkpoint records it was trained with (``format`` in its judgetrain_checkpoint.json)."""
    from judgetrain.train.checkpoint import RECORD_FILE

    name = record.get("format")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{checkpoint / RECORD_FILE}: field format is missing (the checkpoint was written before judgetrain "
                         "recorded its judge template); pass --format NAME, the template the run trained with")
    return name


# --- the card ----------------------------------------------------------------------------------


def build_card(*, name: str, fmt, decoding, record: dict[str, Any], base_model: str, method: str, lora_merged: bool,
               dtype: str, evaluation: list[dict[str, Any]], both_orders: bool = True, disagreement_policy: str = "tie",
               strict: bool = False, aggregation: str = "verdicts", tie_margin: float = 0.0) -> JudgeCard:
    """The judge card of a judge trained on ``fmt``.

    ``aggregation`` / ``tie_margin`` go into ``tie_policy``: how a judge built from the card combines
    the two orders of a pair (:class:`judgetrain.judging.Judge`'s arguments of the same names)."""
    import judgetrain
    from judgetrain.judging.judge import check_aggregation

    check_aggregation(aggregation, tie_margin)
    return JudgeCard(
        name=name,
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        judgetrain_version=judgetrain.__version__,
        format=CardFormat(family=fmt.family, template=fmt.name, version=fmt.version, protocols=(fmt.protocol,),
                          with_reference=fmt.with_reference, multi_turn=fmt.multi_turn, verdict_first=fmt.verdict_first),
        parser=ParserSettings(mode="strict" if strict else "lenient"),
        score_scale=tuple(fmt.score_scale) if fmt.score_scale is not None else None,
        tie_policy=TiePolicy(both_orders=both_orders, disagreement=disagreement_policy, aggregation=aggregation,
                             tie_margin=float(tie_margin)),
        decoding=decoding,
        model=ModelInfo(base=base_model, method=method, lora_merged=lora_merged, dtype=dtype, global_step=record.get("global_step")),
        training_data=TrainingData(manifest_hashes=dict(record.get("manifest_hashes") or {}), git_revision=record.get("git_revision")),
        evaluation=tuple(EvaluationEntry(**entry) for entry in evaluation),
        # An adapter export needs its base model beside it; a merged one stands alone.
        serving=Serving(chat_template="chat_template.jinja",
                        vllm=(f"vllm serve {base_model} --enable-lora --lora-modules judge=<this dir>"
                              if method == "lora" and not lora_merged else "vllm serve <this dir>"),
                        judgetrain="judgetrain serve --model <this dir>"),
    )


def model_card_markdown(card: JudgeCard) -> str:
    """The README.md model card of an export."""
    fmt, model, policy = card.format, card.model, card.tie_policy
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [judgetrain, llm-judge]",
        "---",
        "",
        f"# {card.name}",
        "",
        f"An LLM judge trained with judgetrain {card.judgetrain_version} from `{model.base}` "
        f"({model.method}{', LoRA merged' if model.lora_merged else ''}; {model.global_step} optimizer steps; weights {model.dtype}).",
        "",
        f"- Template: `{fmt.template}` (family `{fmt.family}`, version {fmt.version}), protocol {', '.join(fmt.protocols)}.",
        f"- Parser: {card.parser.mode}; score scale: {list(card.score_scale) if card.score_scale else 'none (winner only)'}.",
        f"- Pairs are judged in both orders: {policy.both_orders}; a disagreement becomes: {policy.disagreement}.",
        *([f"- The two orders are combined by their mean verdict probabilities (position-free): a tie when "
           f"|P(A) - P(B)| <= {policy.tie_margin:g}."]
          if policy.aggregation == "probabilities" else []),
        f"- Default decoding: `{json.dumps(card.decoding.to_dict() if card.decoding else None)}`.",
        "",
        "## Use",
        "",
        "```python",
        "import judgetrain",
        "judge = judgetrain.Judge.from_card(\"<this dir>\")          # or the URL of a server: \"http://127.0.0.1:8000\"",
        "result = judge.compare(\"What is 2+2?\", \"4\", \"5\")          # both orders, aggregated",
        "print(result.winner)",
        "```",
        "",
        f"Serve it: `{card.serving.vllm}` (GPU) or `judgetrain serve --model <this dir>` (CPU); the chat template is in `chat_template.jinja`.",
        "",
        "## Training data",
        "",
    ]
    hashes = card.training_data.manifest_hashes
    lines += [f"- `{path}`: manifest `{digest}`" for path, digest in hashes.items()] or ["- (not recorded)"]
    lines += ["", "## Evaluation", ""]
    if card.evaluation:
        for entry in card.evaluation:
            shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.metrics.items()
                              if isinstance(v, (int, float, str)) and not isinstance(v, bool))
            lines.append(f"- {entry.benchmark or entry.path}: {shown}")
    else:
        lines.append("No evaluation results were found in the run dir.")
    return "\n".join(lines) + "\n"


# --- export ------------------------------------------------------------------------------------


def _greedy_generation_config(model, tokenizer, max_new_tokens: int):
    from transformers import GenerationConfig

    eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else tokenizer.eos_token_id
    # Greedy: a judge's verdict must not change from one call to the next.
    return GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos,
                            pad_token_id=tokenizer.pad_token_id, bos_token_id=model.generation_config.bos_token_id)


def export(checkpoint: str | Path, out: str | Path, *, merge_lora: bool = True, dtype: str = "bf16",
           format_name: str | None = None, max_new_tokens: int | None = None, name: str | None = None,
           decoding=None, aggregation: str = "verdicts", tie_margin: float | None = None) -> Path:
    """Export ``checkpoint`` (a dir written by :func:`judgetrain.train.trainer.train`) to ``out``.

    Args:
        checkpoint: RUN/final or RUN/checkpoint-N (full weights or a LoRA adapter, with the run's
            config and record beside them).
        out: the export dir; replaced when it holds an earlier export, refused when it holds anything else.
        merge_lora: merge a LoRA adapter into the base (``merge_and_unload``); False saves the adapter.
        dtype: fp32, bf16 or fp16 for the saved weights.
        format_name: the judge template; None takes the one the checkpoint records (ValueError when it records none).
        max_new_tokens / decoding: the card's default decoding (default: the format's greedy default).
        name: the judge's name (default: the out dir's name).
        aggregation / tie_margin: how the card's judge combines the two orders of a pair (``"verdicts"``,
            or ``"probabilities"`` with a tie margin; see :class:`judgetrain.judging.Judge`).
    Returns:
        The export dir.
    """
    import torch

    from judgetrain import formats
    from judgetrain.atomic import make_staging_dir, replace_dir
    from judgetrain.judging.judge import default_decoding
    from judgetrain.models import load_model, load_tokenizer, torch_dtype
    from judgetrain.train.checkpoint import read_record

    checkpoint, out = Path(checkpoint), Path(out)
    if not checkpoint.is_dir():
        raise ValueError(f"--checkpoint {checkpoint}: no such dir")
    record = read_record(checkpoint)
    if record is None:
        raise ValueError(f"--checkpoint {checkpoint}: not a complete judgetrain checkpoint (no judgetrain_checkpoint.json); "
                         "use RUN/final or a complete RUN/checkpoint-N")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CARD_FILE).is_file())):
        raise ValueError(f"--out {out} exists and is not an earlier export (no {CARD_FILE}); choose a new or empty dir")
    from judgetrain.judging.judge import check_aggregation, verdict_options

    config = _run_config(checkpoint)
    if config.kind == "reward":
        from judgetrain.reward.export import export_reward

        return export_reward(checkpoint, out, config, record, dtype=dtype, name=name, tie_margin=tie_margin)
    tie_margin = 0.0 if tie_margin is None else tie_margin
    check_aggregation(aggregation, tie_margin)
    fmt = formats.get(format_name or training_format_name(record, checkpoint))
    # A verdict-first template whose first token is a grade (JudgeLM) decides pairs by its expected grades.
    grades_first = fmt.protocol == "pairwise" and fmt.score_scale is not None and bool(verdict_options(fmt))
    if aggregation == "probabilities" and not set(verdict_options(fmt) or ()) & {"A", "B"} and not grades_first:
        logger.warning("--aggregation probabilities: template %s has no winner verdict options, so every pair will fall back "
                       "to the verdicts rule", fmt.name)
    if decoding is None:
        decoding = default_decoding(fmt, max_new_tokens=max_new_tokens)
    target_dtype = torch_dtype(dtype)

    is_adapter = (checkpoint / "adapter_config.json").is_file()
    # Merge in fp32 (the adapter's delta is small; rounding it into bf16 weights first would lose it), cast after.
    model = load_model(str(checkpoint), dtype="fp32")
    lora_merged = False
    if is_adapter and merge_lora:
        model = model.merge_and_unload()
        lora_merged = True
    tokenizer = load_tokenizer(str(checkpoint) if (checkpoint / "tokenizer_config.json").is_file() else
                               (config.model.tokenizer or config.model.path))
    tokenizer.padding_side = "left"
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{checkpoint}: the tokenizer has no chat template, so a server could not rebuild the training prompt; "
                         "train with a chat model's tokenizer")
    model = model.to(target_dtype)
    base_model = config.model.path
    if lora_merged or not is_adapter:
        # The exported weights stand alone: their config names no cache path of this machine.
        model.config._name_or_path = name or out.name

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(out.parent, f".{out.name}.tmp-")
    try:
        model.generation_config = _greedy_generation_config(model, tokenizer, decoding.max_new_tokens)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if is_adapter and not merge_lora:
            model.generation_config.save_pretrained(staging)
        card = build_card(name=name or out.name, fmt=fmt, decoding=decoding, record=record, base_model=base_model,
                          method=config.method.name, lora_merged=lora_merged, dtype=str(target_dtype).removeprefix("torch."),
                          evaluation=copy_eval_results(checkpoint.parent, staging), aggregation=aggregation, tie_margin=tie_margin)
        write_card(staging, card)
        (staging / "README.md").write_text(model_card_markdown(card), encoding="utf-8")
        readable_by_all(staging)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return out


__all__ = ["configure", "run", "export", "build_card", "find_eval_results", "model_card_markdown", "training_format_name"]
