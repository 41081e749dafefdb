"""Setup → train → save: a transformers ``Trainer`` assembled from a :class:`TrainConfig`.

The loop, the distribution (DDP, DeepSpeed ZeRO, FSDP through accelerate) and the optimizer are the
Trainer's; this module only decides what goes into it:

- model: :func:`judgetrain.models.load_model` (an HF dir, a hub id, the embedded SmolLM2, ``tiny``),
  wrapped in a peft LoRA model for ``method.name: lora``;
- data: :func:`judgetrain.train.data.build_train_data` (packed or length-grouped rows, or online
  augmentation with a set-epoch callback);
- loss: :func:`judgetrain.train.loss.judgment_token_loss` as the Trainer's ``compute_loss_func``:
  cross-entropy on the supervised tokens only, summed and divided by the supervised-token count of
  the whole global batch, which the Trainer counts over every gradient-accumulation micro-batch and
  (``average_tokens_across_devices=True``) every process;
- checkpoints: the Trainer's ``checkpoint-N`` (safetensors, optimizer, RNG), completed with the
  config and the data manifest hashes by :class:`CheckpointRecordCallback`; resume from the latest
  complete one; the final model saved to ``final/`` through a rename.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from judgetrain.models import EMBEDDED_MODEL, TINY_MODEL, load_model, load_tokenizer
from judgetrain.train import parallel
from judgetrain.train.callbacks import SetEpochCallback, StdoutLogCallback
from judgetrain.train.checkpoint import CONFIG_FILE, CheckpointRecordCallback, git_revision, resume_checkpoint, save_final
from judgetrain.train.config import TrainConfig, save_config
from judgetrain.train.data import EpochSeededLengthGroupedSampler, EpochSeededPairGroupedSampler, TrainData, build_train_data
from judgetrain.train.loss import judgment_token_loss

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run produced."""

    final_dir: Path
    """The saved model (full safetensors weights, or the LoRA adapter) with its config and record."""
    global_step: int
    train_loss: float
    """Mean of the logged training losses over the run."""
    log_history: list[dict[str, Any]] = field(default_factory=list)
    distributed_type: str = "NO"
    resumed_from: str | None = None
    data_stats: dict[str, Any] = field(default_factory=dict)


def tokenizer_name(config: TrainConfig) -> str:
    """The name the tokenizer is loaded by (and recorded under in prepared dirs)."""
    return config.model.tokenizer or config.model.path


def build_model(config: TrainConfig):
    """The model to train: loaded by :func:`load_model`, LoRA-wrapped when ``method.name`` is lora, with
    per-sample sdpa attention when ``data.packing`` is on (:func:`judgetrain.data.packing.use_packed_sdpa`)."""
    if config.kind == "reward":
        from judgetrain.reward.train import build_reward_model

        model = build_reward_model(config)
    else:
        model = load_model(config.model.path, dtype=config.model.dtype, attention=config.model.attention,
                           trust_remote_code=config.model.trust_remote_code)
    if config.model.path in (TINY_MODEL, EMBEDDED_MODEL):
        # Saved adapters then name the base by the portable name load_model resolves, not a cache path.
        model.name_or_path = config.model.path
        model.config._name_or_path = config.model.path
    if config.data.packing:
        from judgetrain.data.packing import use_packed_sdpa

        # sdpa would attend over each whole packed row under a block-diagonal mask; this runs it per sample.
        if use_packed_sdpa(model):
            logger.info("packing: sdpa attention runs per packed sample (%s)", model.config._attn_implementation)
    if config.method.trainable_layers is not None:
        from judgetrain.reward.train import freeze_lower_layers

        freeze_lower_layers(model, config.method.trainable_layers)
    if config.method.name == "lora":
        from peft import LoraConfig, get_peft_model

        lora = config.method.lora
        targets = lora.target_modules
        peft_config = LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias="none",
            task_type="SEQ_CLS" if config.kind == "reward" else "CAUSAL_LM",
            target_modules="all-linear" if targets == ["all-linear"] else list(targets),
        )
        model = get_peft_model(model, peft_config)
    return model


def empty_model(config: TrainConfig):
    """The model's modules without weights (meta tensors): enough to read its decoder layer class."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from judgetrain.models import resolve_model_path, tiny_config

    if config.model.path == TINY_MODEL:
        model_config = tiny_config(len(load_tokenizer(TINY_MODEL)))
    else:
        model_config = AutoConfig.from_pretrained(resolve_model_path(config.model.path),
                                                  trust_remote_code=config.model.trust_remote_code)
    with init_empty_weights():
        return AutoModelForCausalLM.from_config(model_config, trust_remote_code=config.model.trust_remote_code)


def _report_to(config: TrainConfig) -> list[str]:
    wandb = config.logging.wandb
    if not wandb.enabled:
        return []
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        raise ValueError("logging.wandb.enabled is true but wandb is not installed: pip install 'judgetrain[train]'")
    os.environ.setdefault("WANDB_PROJECT", wandb.project)
    os.environ.setdefault("WANDB_DIR", str(Path(config.output_dir).resolve()))
    if not os.environ.get("WANDB_API_KEY") and "WANDB_MODE" not in os.environ:
        # Without a key, log to local files (sync later with `wandb sync`) instead of prompting for a login.
        os.environ["WANDB_MODE"] = "offline"
        logger.warning("WANDB_API_KEY is not set: wandb logs offline under %s", os.environ["WANDB_DIR"])
    return ["wandb"]


def build_training_args(config: TrainConfig, *, has_eval: bool, packed: bool, model_for_fsdp=None):
    """The ``TrainingArguments`` of a run (call on every process: it sets up the distributed state)."""
    from transformers import TrainingArguments

    world_size = parallel.world_size_from_env()
    per_device, accumulation, _ = parallel.resolve_batch_sizes(config.optim, world_size)
    cuda = torch.cuda.is_available()
    optim = config.optim
    checkpoint_every = config.checkpoint.every_steps
    eval_every = config.eval.every_steps if has_eval else 0
    fsdp_kwargs: dict[str, Any] = {}
    if config.parallel.fsdp.enabled:
        fsdp_kwargs = {"fsdp": True, "fsdp_config": parallel.build_fsdp_config(config.parallel.fsdp, model_for_fsdp)}
    return TrainingArguments(
        output_dir=config.output_dir,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=optim.epochs,
        max_steps=optim.max_steps if optim.max_steps is not None else -1,
        learning_rate=optim.lr,
        lr_scheduler_type=optim.schedule,
        # A float below 1 is a fraction of the optimizer steps.
        warmup_steps=optim.warmup_ratio,
        weight_decay=optim.weight_decay,
        max_grad_norm=optim.max_grad_norm,
        optim=optim.optimizer,
        bf16=optim.bf16,
        seed=optim.seed,
        data_seed=optim.seed,
        average_tokens_across_devices=True,
        # Packed rows already group samples; unpacked rows are batched with others of similar length.
        train_sampling_strategy="random" if packed else "group_by_length",
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        logging_strategy="steps",
        logging_steps=config.logging.every_steps,
        disable_tqdm=config.logging.stdout,
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every or None,
        save_strategy="steps" if checkpoint_every else "no",
        save_steps=checkpoint_every or 500,
        save_total_limit=config.checkpoint.keep_last,
        report_to=_report_to(config),
        run_name=config.logging.wandb.run_name or Path(config.output_dir).name,
        use_cpu=not cuda,
        ddp_backend="gloo" if world_size > 1 and not cuda else None,
        deepspeed=parallel.deepspeed_config_path(config),
        dataloader_num_workers=0,
        # Reward rows hold chosen / rejected ids that the collator turns into model inputs.
        remove_unused_columns=config.kind != "reward",
        **fsdp_kwargs,
    )


class JudgeTrainer(Trainer):
    """The transformers Trainer with a length-grouped order that a resumed run reproduces
    (:class:`~judgetrain.train.data.EpochSeededLengthGroupedSampler`); for pair-symmetric unpacked rows,
    the same order over couples of rows, so both orders of a pair share an optimizer step
    (:class:`~judgetrain.train.data.EpochSeededPairGroupedSampler`)."""

    pair_symmetric: bool = False
    """The training rows come in couples (the two orders of a pair): set from ``TrainData.pair_symmetric``."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            if self.pair_symmetric:
                # batch_size is per_device_batch_size × gradient_accumulation_steps: the rows one process takes per step.
                return EpochSeededPairGroupedSampler(sampler.lengths, sampler.batch_size, seed)
            return EpochSeededLengthGroupedSampler(sampler.lengths, sampler.batch_size, seed)
        return sampler


class RewardTrainer(JudgeTrainer):
    """The Trainer of a reward judge: the Bradley-Terry loss over the pairs of each micro-batch
    (:func:`judgetrain.reward.loss.bradley_terry_loss`). The loss is a per-pair mean, so the Trainer
    divides it by the accumulation steps and DDP averages it over processes: the mean over the pairs
    of the global batch, every micro-batch holding the same number of pairs."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from judgetrain.reward.loss import PAIR_WEIGHTS_KEY, bradley_terry_loss, pair_rewards

        chosen, rejected = pair_rewards(model, inputs)
        # Length-balance weights (data.length_balance=weight), when the batch carries them.
        loss = bradley_terry_loss(chosen, rejected, inputs.get(PAIR_WEIGHTS_KEY))
        return (loss, {"chosen": chosen, "rejected": rejected}) if return_outputs else loss


def build_trainer(config: TrainConfig, model, tokenizer, data: TrainData, args, *, revision: str | None = None,
                  callbacks: list | None = None):
    """The Trainer of a run, with the set-epoch, stdout and checkpoint-record callbacks."""
    from transformers.trainer_callback import PrinterCallback

    run_callbacks = [CheckpointRecordCallback(config, data.manifest_hashes, revision)]
    if data.online:
        run_callbacks.append(SetEpochCallback(data.train_dataset))
    if config.logging.stdout:
        run_callbacks.append(StdoutLogCallback())
    run_callbacks.extend(callbacks or [])
    if config.kind == "reward":
        trainer = RewardTrainer(model=model, args=args, train_dataset=data.train_dataset, data_collator=data.data_collator,
                                processing_class=tokenizer, callbacks=run_callbacks)
    else:
        trainer = JudgeTrainer(model=model, args=args, train_dataset=data.train_dataset, eval_dataset=data.eval_dataset,
                               data_collator=data.data_collator, processing_class=tokenizer, callbacks=run_callbacks,
                               compute_loss_func=judgment_token_loss)
    trainer.pair_symmetric = data.pair_symmetric
    if config.logging.stdout:
        trainer.remove_callback(PrinterCallback)
    for callback in callbacks or []:
        # Callbacks that log their own metrics (judge agreement) do it through Trainer.log.
        if hasattr(callback, "attach"):
            callback.attach(trainer)
    return trainer


def train(config: TrainConfig, *, callbacks: list | None = None) -> TrainResult:
    """Run a training config end to end (on every process of the launch) and return what it produced.

    ``callbacks`` are extra ``TrainerCallback`` objects added to the run's own."""
    from transformers import set_seed

    # ---- setup: settings that can be checked before any weight is loaded ----
    world_size = parallel.world_size_from_env()
    parallel.check_world_size(config, world_size)
    parallel.resolve_batch_sizes(config.optim, world_size)
    parallel.check_fsdp_available(config)
    revision = git_revision()
    set_seed(config.optim.seed)

    tokenizer = load_tokenizer(tokenizer_name(config))
    if config.kind == "reward":
        from judgetrain.reward.train import build_reward_data

        data = build_reward_data(config, tokenizer, seed=config.optim.seed)
    else:
        data = build_train_data(config.data, tokenizer, tokenizer_name=tokenizer_name(config), seed=config.optim.seed)

    # TrainingArguments before the model: under DeepSpeed ZeRO-3 that makes from_pretrained load the
    # weights already sharded; FSDP only needs the decoder layer class, read from weightless modules.
    args = build_training_args(config, has_eval=data.eval_dataset is not None, packed=data.packed,
                               model_for_fsdp=empty_model(config) if config.parallel.fsdp.enabled else None)
    # Reading args.device sets up the process group now: ZeRO-3's zero.Init (inside from_pretrained /
    # from_config) sizes its batch arithmetic by the world size it finds initialised.
    _ = args.device
    parallel.init_deepspeed_comm(config)
    model = build_model(config)
    callbacks = list(callbacks or [])
    if config.eval.judge.num_samples and config.kind == "reward":
        from judgetrain.reward.train import RewardAgreementCallback

        callbacks.append(RewardAgreementCallback.from_config(config, tokenizer, data))
    elif config.eval.judge.num_samples:
        from judgetrain.train.judge_eval import JudgeAgreementCallback

        callbacks.append(JudgeAgreementCallback.from_config(config, tokenizer, data))
    trainer = build_trainer(config, model, tokenizer, data, args, revision=revision, callbacks=callbacks)
    distributed_type = parallel.check_distributed_type(config, trainer.accelerator)
    if trainer.is_world_process_zero():
        save_config(config, Path(config.output_dir) / CONFIG_FILE)
        logger.warning("data: %s", data.stats)

    # ---- train ----
    resumed_from = resume_checkpoint(config.output_dir, config.checkpoint.resume)
    if resumed_from:
        logger.warning("resuming from %s", resumed_from)
    output = trainer.train(resume_from_checkpoint=resumed_from)

    # ---- save ----
    final_dir = save_final(trainer, config, manifest_hashes=data.manifest_hashes, revision=revision)
    if config.kind == "reward" and data.held_out_samples and trainer.is_world_process_zero():
        _choose_reward_tie_margin(trainer.model, tokenizer, data.held_out_samples, final_dir, config)
    return TrainResult(final_dir=final_dir, global_step=trainer.state.global_step, train_loss=float(output.training_loss),
                       log_history=list(trainer.state.log_history), distributed_type=distributed_type,
                       resumed_from=resumed_from, data_stats=data.stats)


def _choose_reward_tie_margin(model, tokenizer, held_out, final_dir: Path, config: TrainConfig) -> None:
    """Pick a reward judge's tie margin on the held-out pairs and keep it beside the final model."""
    from judgetrain.reward.judge import LocalRewardScorer, RewardJudge
    from judgetrain.reward.margin import choose_reward_tie_margin, save_tie_margin

    scorer = LocalRewardScorer(model, tokenizer, batch_size=config.eval.judge.batch_size, max_seq_len=config.data.max_seq_len)
    record = choose_reward_tie_margin(RewardJudge(scorer), held_out, source=f"{len(held_out)} held-out training samples")
    if record is not None:
        save_tie_margin(final_dir, record)
        logger.warning("tie margin %.2f (accuracy %.3f on %d held-out pairs, %d ties)", record["tie_margin"], record["accuracy"],
                       record["num_pairs"], record["num_ties"])


__all__ = ["TrainResult", "train", "RewardTrainer", "build_model", "build_training_args", "build_trainer", "tokenizer_name"]
