"""The reward judge: one score per answer from a sequence-classification head (Bradley-Terry).

A generative judge reads both answers in one prompt and writes a verdict, so the answer it sees
first can sway it, and a small model learns that position prior long before it learns a preference.
A reward judge never sees two answers at once: it reads the conversation (question, then one answer)
and returns one number, and a pair is decided by the difference of the two numbers. Its verdict is
therefore independent of the order the answers come in, by construction, and judging a pair costs
two short forward passes instead of two long prompts (one per order).

- :mod:`judgetrain.reward.data`: the scored conversation (template ``reward-chat-v1``), pair rows
  (chosen / rejected token ids) and their collator;
- :mod:`judgetrain.reward.loss`: the Bradley-Terry loss, ``-log σ(r_chosen − r_rejected)``;
- :mod:`judgetrain.reward.judge`: :class:`RewardJudge` (local transformers model or an HTTP server's
  ``/pooling`` route), which speaks the same Judgment records as the generative Judge.

Training is ``kind: reward`` in a recipe (``judgetrain train``); export, serve, eval and the client
read the judge card's ``kind`` and take this path.
"""

from judgetrain.reward.data import REWARD_TEMPLATE, reward_messages

__all__ = ["REWARD_TEMPLATE", "reward_messages"]
