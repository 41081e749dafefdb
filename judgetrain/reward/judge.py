"""RewardJudge: pairwise verdicts and grades from one reward per answer.

Each answer's conversation (:func:`judgetrain.reward.data.reward_messages`) is scored once, by a local
sequence-classification model (:class:`LocalRewardScorer`, batched and sorted by length) or by a
server's ``/pooling`` route (:class:`HTTPRewardScorer`: ``judgetrain serve`` of a reward export, or
``vllm serve EXPORT --runner pooling``). A pair's verdict is A when r_A − r_B > ``tie_margin``, B when
r_A − r_B < −``tie_margin``, else a tie; ``verdict.scores`` holds (r_A, r_B) and
``verdict_probabilities`` the Bradley-Terry P(A wins) = σ(r_A − r_B).

The records are the generative judge's: one :class:`~judgetrain.types.Judgment` per sample, and for
a pair its two orders in the typed ``both_orders`` record. The swapped order costs no call:
each reward is computed from one answer alone, so showing the answers the other way round gives the
same two rewards, and the swapped verdict is the original one mapped back, exactly. Consistency is
therefore 1 by construction, which the both-orders record says (``by_construction=True``).

A pair over the token budget is cut question first (:func:`judgetrain.reward.data.fit_reward_sample`):
both conversations share the shortened question and the answers stay whole as far as they fit, so a
long question cannot reduce two different answers to the same scored text. A judgment whose input
was cut says so in its ``meta`` (``input_truncated``, with the tokens cut from the question and from
each answer; :class:`judgetrain.judging.truncation.InputCut`). A :class:`LocalRewardScorer` cuts;
behind an :class:`HTTPRewardScorer` the server cuts each conversation by the same rule.

:meth:`RewardJudge.from_card` builds one from a reward card (an export dir, or a server of one); it
speaks the judge protocol of :mod:`judgetrain.judging.protocol`, whose factory
(:func:`~judgetrain.judging.protocol.judge_from_card`) builds either kind from its card.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Sequence

import torch

from judgetrain.judging.card_target import api_root, check_against_card, card_where, is_served, load_card, model_dir, served_model_id
from judgetrain.judging.truncation import InputCut
from judgetrain.reward.data import REWARD_TEMPLATE, conversation_text, encode_for_judging, fit_reward_sample, reward_messages
from judgetrain.types import Answer, BothOrders, JudgeSample, Judgment, Verdict, flip_winner

if TYPE_CHECKING:
    from judgetrain.card import JudgeCard
    from judgetrain.judging.ranking import RerankResult

DEFAULT_MAX_SEQ_LEN = 1024
"""Token budget of a scored conversation when the card does not give the training one."""


def winner_of_margin(margin: float, tie_margin: float) -> str:
    """The verdict for r_A − r_B = ``margin``: A above ``tie_margin``, B below −``tie_margin``, else a tie.

    Symmetric by construction: ``winner_of_margin(-m, t) == flip_winner(winner_of_margin(m, t))``."""
    if margin > tie_margin:
        return "A"
    if margin < -tie_margin:
        return "B"
    return "tie"


class LocalRewardScorer:
    """Rewards from a sequence-classification model (an export dir, a checkpoint, or a loaded model).

    Args:
        model_or_path: a path for ``AutoModelForSequenceClassification`` or a loaded model.
        tokenizer: required with a loaded model; loaded from the path otherwise.
        batch_size: conversations per forward pass (sorted by length, so batches pad little).
        max_seq_len: token budget of a conversation (beyond it the question is shortened first; see the module doc).
        dtype: fp32, bf16 or auto (bf16 where this device runs it fast) for a path.
    """

    name = "transformers-reward"

    def __init__(self, model_or_path: Any, tokenizer: Any = None, *, batch_size: int = 16,
                 max_seq_len: int = DEFAULT_MAX_SEQ_LEN, dtype: str = "auto", device: str | None = None):
        from judgetrain.models import load_tokenizer, resolve_model_path, torch_dtype

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        if isinstance(model_or_path, (str, bytes)) or hasattr(model_or_path, "__fspath__"):
            from transformers import AutoModelForSequenceClassification

            from judgetrain.judging.backends.transformers_backend import resolve_dtype

            path = resolve_model_path(str(model_or_path))
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            # Weights stay fp32 and matmuls run in bf16 under autocast where that is fast: on CPUs with
            # native bf16 units that is ~2.5x the fp32 speed, with the head's output kept in fp32.
            self.autocast = resolve_dtype(dtype, device) == "bf16"
            self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch_dtype("fp32"), use_safetensors=None)
            self.model.to(device)
            self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(path)
            self.model_id = str(model_or_path)
        else:
            if tokenizer is None:
                raise ValueError("LocalRewardScorer: a loaded model needs its tokenizer (tokenizer=...)")
            from judgetrain.judging.backends.transformers_backend import resolve_dtype

            self.model, self.tokenizer = model_or_path, tokenizer
            if device is not None:
                self.model.to(device)
            model_device = next(self.model.parameters()).device
            # A live fp32 model (training's, for the tie margin) is scored under the same autocast.
            self.autocast = next(self.model.parameters()).dtype == torch.float32 and resolve_dtype(dtype, model_device) == "bf16"
            self.model_id = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        if getattr(self.model.config, "num_labels", 1) != 1:
            raise ValueError(f"{self.model_id}: a reward model has one output, this one has {self.model.config.num_labels}")
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.device = next(self.model.parameters()).device

    def fit(self, sample: JudgeSample) -> tuple[JudgeSample, InputCut | None]:
        """``sample`` with every answer's conversation within ``max_seq_len`` (question cut first), and what was cut."""
        return fit_reward_sample(sample, self.tokenizer, self.max_seq_len)

    def encode(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The token ids scored for one conversation, shortened question first to fit ``max_seq_len``."""
        return encode_for_judging(self.tokenizer, messages, self.max_seq_len)[0]

    def input_cut_meta(self, messages: Sequence[dict[str, str]]) -> dict[str, Any]:
        """What fitting one conversation into ``max_seq_len`` cut, as judgment meta entries (empty when it fits)."""
        cut = encode_for_judging(self.tokenizer, messages, self.max_seq_len)[1]
        return cut.to_meta() if cut is not None else {}

    @torch.inference_mode()
    def score(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[float]:
        """One reward per conversation, in order."""
        encoded = [self.encode(c) for c in conversations]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
        rewards: list[float] = [math.nan] * len(encoded)
        pad = self.tokenizer.pad_token_id
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                width = max(len(encoded[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                    attention_mask[row, : len(encoded[i])] = 1
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                    logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)).logits
                for row, i in enumerate(batch):
                    rewards[i] = float(logits[row, 0].float())
        finally:
            if was_training:
                self.model.train()
        return rewards

    def prompt_text(self, messages: Sequence[dict[str, str]]) -> str:
        return conversation_text(self.tokenizer, messages)

    def close(self) -> None:
        pass


class HTTPRewardScorer:
    """Rewards from a server's ``/pooling`` route (vLLM's pooling API: ``{"model", "messages"}`` in,
    ``{"data": [{"data": [reward]}]}`` out), one request per conversation, ``max_concurrency`` at once."""

    name = "http-reward"

    def __init__(self, base_url: str, model: str, *, timeout_seconds: float = 60.0, max_concurrency: int = 8):
        self.root = base_url.rstrip("/").removesuffix("/v1")
        self.model_id = model
        self.timeout_seconds = timeout_seconds
        self.max_concurrency = max_concurrency

    def _one(self, client, messages: Sequence[dict[str, str]]) -> float:
        import httpx

        url = f"{self.root}/pooling"
        try:
            response = client.post(url, json={"model": self.model_id, "messages": [dict(m) for m in messages]})
        except httpx.HTTPError as err:
            raise ValueError(f"{url}: {type(err).__name__}: {err}; is the server running?") from None
        if response.status_code != 200:
            raise ValueError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
        try:
            value = response.json()["data"][0]["data"]
            return float(value[0] if isinstance(value, list) else value)
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValueError(f"{url}: the answer is not a pooling response with one reward: {response.text[:300]}") from None

    def score(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[float]:
        from concurrent.futures import ThreadPoolExecutor

        import httpx

        with httpx.Client(timeout=self.timeout_seconds) as client, ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(lambda messages: self._one(client, messages), conversations))

    def prompt_text(self, messages: Sequence[dict[str, str]]) -> str | None:
        return None

    def close(self) -> None:
        pass


class _RewardFormat:
    """What callers read off ``judge.format``: the template's name and the protocols it judges. It
    has no prompt to render and no parser: the verdict is read off two rewards."""

    name = REWARD_TEMPLATE
    version = 1
    family = "reward"
    protocol = "pairwise"
    protocols = ("pairwise", "single")
    with_reference = False

    def check_sample(self, sample: JudgeSample) -> None:
        """ValueError unless ``sample`` has one answer (a grade) or two (a pair)."""
        if sample.protocol not in self.protocols:
            raise ValueError(f"sample {sample.id!r}: a reward judge scores one or two answers, this one has {len(sample.answers)}")


class RewardJudge:
    """A judge that scores each answer alone (see the module doc).

    Args:
        scorer: :class:`LocalRewardScorer`, :class:`HTTPRewardScorer`, or anything with
            ``score(conversations) -> list[float]``.
        tie_margin: |r_A − r_B| at or below this is a tie (chosen on a dev split; recorded in the card).
        both_orders: kept for the generative Judge's interface; a reward judge's orders cannot differ.
    """

    kind = "reward"
    format = _RewardFormat()
    card: "JudgeCard | None" = None

    def __init__(self, scorer: Any, *, tie_margin: float = 0.0, both_orders: bool = True, progress: bool = False):
        if not tie_margin >= 0:
            raise ValueError(f"tie_margin must be >= 0, got {tie_margin!r}")
        self.scorer = scorer
        self.tie_margin = float(tie_margin)
        self.both_orders = both_orders
        self.progress = progress

    @classmethod
    def from_card(cls, path_or_url: Any, *, card: Any = None, model: str | None = None, batch_size: int = 8,
                  dtype: str | None = None, api_key_env: str | None = None, progress: bool = False,
                  backend_name: str | None = None, cache: Any = None, tie_margin: float | None = None,
                  both_orders: bool = True, **unknown: Any) -> "RewardJudge":
        """The reward judge a reward card describes: a local export dir (scored by
        :class:`LocalRewardScorer` within the card's token budget) or a server of one (its
        ``/pooling`` route, :class:`HTTPRewardScorer`); ``card=`` gives the card of a server that
        publishes none. The tie margin is the card's unless ``tie_margin`` is given. ``cache`` is
        accepted for the generative judge's interface and not used: rewards are not generations
        (``judgetrain rerank`` puts them behind the result cache itself). A generative card is a
        ValueError: build it with :meth:`judgetrain.judging.Judge.from_card` or
        :func:`judgetrain.judging.protocol.judge_from_card`."""
        target = str(path_or_url)
        loaded = load_card(target, card=card, api_key_env=api_key_env)
        where = card_where(target, card)
        if loaded.kind != "reward":
            raise ValueError(f"{where}: the judge card is a {loaded.kind} judge's (template {loaded.template}), not a reward "
                             "judge's; build it with judgetrain.Judge.from_card or judgetrain.judging.protocol.judge_from_card")
        check_against_card(loaded, target, where=where, backend_name=backend_name)
        if unknown:
            raise ValueError(f"{', '.join(sorted(unknown))}: not a setting of a reward judge (it generates and parses nothing); "
                             "it takes tie_margin and both_orders, besides where and how to score")
        assert loaded.reward is not None, "a reward card has reward settings"
        if is_served(target):
            if api_key_env:
                raise ValueError(f"api_key_env={api_key_env!r}: the reward judge over HTTP sends no API key; serve the "
                                 "reward export without --api-key-env, or judge with the export dir")
            if dtype is not None:
                raise ValueError(f"dtype={dtype!r}: {target} is a served judge; its server chose the dtype")
            root = api_root(target)
            scorer: Any = HTTPRewardScorer(root, model or served_model_id(root), max_concurrency=batch_size)
        else:
            scorer = LocalRewardScorer(model_dir(target), batch_size=batch_size, max_seq_len=loaded.reward.max_seq_len,
                                       **({"dtype": dtype} if dtype is not None else {}))
        judge = cls(scorer, tie_margin=loaded.reward.tie_margin if tie_margin is None else tie_margin,
                    both_orders=both_orders, progress=progress)
        judge.card = loaded
        return judge

    @property
    def backend(self) -> Any:
        return self.scorer

    def compare(self, question: str, answer_a: str, answer_b: str, **options: Any) -> Judgment:
        """Judge two answers (:func:`judgetrain.judging.ranking.compare`); both orders cost one scoring."""
        from judgetrain.judging.ranking import compare

        return compare(self, question, answer_a, answer_b, **options)

    def rerank(self, question: str, candidates: Sequence[str], **options: Any) -> "RerankResult":
        """Best-of-n: each candidate scored once (:func:`judgetrain.judging.ranking.rerank`)."""
        from judgetrain.judging.ranking import rerank

        return rerank(self, question, candidates, **options)

    def close(self) -> None:
        """Release the scorer (its model or HTTP connections)."""
        self.scorer.close()

    # --- judging ------------------------------------------------------------------------------
    def judge(self, samples: Sequence[JudgeSample]) -> list[Judgment]:
        """One Judgment per sample, in order: a verdict for a pair, a grade (the reward) for one answer.
        A sample over the scorer's budget is cut question first and its judgment's meta says so."""
        conversations, owners = [], []
        cuts: list[InputCut | None] = [None] * len(samples)
        unfit: dict[int, str] = {}
        fit = getattr(self.scorer, "fit", None)
        for index, sample in enumerate(samples):
            if sample.protocol not in ("pairwise", "single"):
                raise ValueError(f"sample {sample.id!r}: a reward judge scores one or two answers")
            shown = sample
            if fit is not None:
                try:
                    shown, cuts[index] = fit(sample)
                except ValueError as err:
                    # Not even the template fits: this sample's error, not the whole run's.
                    unfit[index] = str(err)
            for answer_index in range(len(sample.answers)):
                conversations.append(reward_messages(shown, answer_index))
                owners.append(index)
        scored = [i for i, owner in enumerate(owners) if owner not in unfit]
        started = time.perf_counter()
        rewards = [math.nan] * len(conversations)
        try:
            for position, reward in zip(scored, self.scorer.score([conversations[i] for i in scored]) if scored else []):
                rewards[position] = reward
            error = None
        except ValueError as err:
            error = str(err)
        seconds = (time.perf_counter() - started) / max(1, len(samples))
        per_sample: list[list[tuple[list[dict[str, str]], float]]] = [[] for _ in samples]
        for owner, messages, reward in zip(owners, conversations, rewards):
            per_sample[owner].append((messages, reward))
        return [self._judgment(sample, parts, seconds, unfit.get(index, error), cuts[index])
                for index, (sample, parts) in enumerate(zip(samples, per_sample))]

    def _common(self, sample: JudgeSample, messages: list[dict[str, str]], seconds: float) -> dict[str, Any]:
        return dict(sample_id=sample.id, template=REWARD_TEMPLATE, prompt_messages=tuple(messages),
                    prompt_text=self.scorer.prompt_text(messages), backend=self.scorer.name, model=self.scorer.model_id,
                    decoding={"tie_margin": self.tie_margin}, latency_seconds=seconds)

    def _judgment(self, sample: JudgeSample, parts, seconds: float, error: str | None, cut: InputCut | None) -> Judgment:
        cut_meta = cut.to_meta() if cut is not None else {}
        meta: dict[str, Any] = {"template_version": 1, "cached": False, "rewards": [r for _, r in parts], **cut_meta}
        common = self._common(sample, parts[0][0], seconds)
        if error is not None or any(not math.isfinite(r) for _, r in parts):
            return Judgment(error=error or "the scorer returned no finite reward", meta=meta, **common)
        if sample.protocol == "single":
            reward = parts[0][1]
            return Judgment(verdict=Verdict(scores=(reward,), template=REWARD_TEMPLATE), raw_text=f"reward {reward:.6f}",
                            meta=meta, **common)
        (_, reward_a), (_, reward_b) = parts
        original = self._pair_judgment(sample, reward_a, reward_b, common, cut_meta, swapped=False)
        # The swapped order reads the same two conversations, so its rewards are these two, exchanged.
        swapped = self._pair_judgment(sample, reward_a, reward_b, common, cut_meta, swapped=True)
        record = BothOrders(original=original, swapped=swapped, policy="tie", outcome=original.winner,
                            by_construction=True)
        return Judgment(verdict=original.verdict, raw_text=original.raw_text, verdict_probabilities=original.verdict_probabilities,
                        both_orders=record, meta=meta, **common)

    def _pair_judgment(self, sample: JudgeSample, reward_a: float, reward_b: float, common: dict[str, Any],
                       cut_meta: dict[str, Any], *, swapped: bool) -> Judgment:
        if swapped:
            # As the judge saw it: the sample's answer B first. Mapped back to the sample's order below.
            shown_margin = reward_b - reward_a
            winner = flip_winner(winner_of_margin(shown_margin, self.tie_margin))
            raw_text = f"reward first {reward_b:.6f} second {reward_a:.6f}"
        else:
            winner = winner_of_margin(reward_a - reward_b, self.tie_margin)
            raw_text = f"reward first {reward_a:.6f} second {reward_b:.6f}"
        p_a = 1.0 / (1.0 + math.exp(-(reward_a - reward_b))) if abs(reward_a - reward_b) < 700 else float(reward_a > reward_b)
        verdict = Verdict(winner=winner, scores=(reward_a, reward_b), template=REWARD_TEMPLATE)
        return Judgment(verdict=verdict, raw_text=raw_text, swapped=swapped, verdict_probabilities={"A": p_a, "B": 1.0 - p_a},
                        meta={"template_version": 1, "cached": False, **cut_meta}, **common)


def single_sample(question: str, answer: str, *, sample_id: str = "score") -> JudgeSample:
    """A one-answer sample, for scoring a single answer."""
    return JudgeSample(id=sample_id, source="client", question=question, answers=(Answer(answer),))


__all__ = ["RewardJudge", "LocalRewardScorer", "HTTPRewardScorer", "winner_of_margin", "single_sample", "DEFAULT_MAX_SEQ_LEN"]
