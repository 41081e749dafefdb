"""Exported judges inside other libraries' training loops.

- :mod:`judgetrain.integrations.trl`: TRL reward functions from a judge card: :class:`~judgetrain.integrations.trl.JudgeReward`
  (one score per completion, for ``GRPOTrainer``) and :class:`~judgetrain.integrations.trl.ReferenceReward`
  (each completion judged against the dataset's reference answer in both orders, for
  ``trl.experimental.online_dpo.OnlineDPOTrainer`` or GRPO).

The reward functions are plain callables in the library's own calling convention, so nothing here
imports the library itself: ``import judgetrain.integrations.trl`` works without TRL installed.
"""
