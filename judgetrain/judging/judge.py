"""A Judge is a format plus a backend: samples in, one :class:`~judgetrain.types.Judgment` per sample out.

The Judge renders each sample with its format, sends the chat requests to the backend in one call
(so a batched backend sees every prompt at once and can sort them by length), parses every output
with the same format and records exactly what was sent and what came back.

Both orders. With ``both_orders=True`` a pairwise sample is judged as shown and with its two answers
swapped (``judgetrain.data.augment.swap``). The swapped order's verdict is mapped back to the
sample's own order (winner A <-> B, scores reversed, P(A) <-> P(B)), then the two are aggregated:
agreement gives that verdict; disagreement gives a tie (policy ``"tie"``) or the outcome
``"inconsistent"`` (policy ``"inconsistent"``), which is neither a verdict nor a failure. When either
order has no verdict the aggregate carries that failure (an error before a parse failure): a parse
failure is never turned into a tie. The per-sample Judgment keeps both per-order judgments and the
outcome in its typed ``both_orders`` field (:class:`~judgetrain.types.BothOrders`): ``original`` and
``swapped`` (its verdict already mapped back; ``raw_text`` and the critique are as the judge wrote
them, naming the answers in the order it saw them), ``policy``, ``outcome`` (``"A"`` / ``"B"`` /
``"tie"`` / ``"score"`` / ``"inconsistent"`` / ``"parse_failure"`` / ``"error"``), ``consistent``
(None unless both orders have a verdict), ``aggregation`` and ``aggregated_by``.

Aggregation. ``aggregation="verdicts"`` (the default) is the rule above. ``aggregation="probabilities"``
decides a pair from the verdict probabilities instead: P(A wins) is the mean over the two orders of
each order's option probability (the swapped order's already mapped back), likewise P(B), and the
winner is A when P(A) − P(B) > ``tie_margin``, B when it is < −``tie_margin``, else a tie. The
aggregated verdict is position-free by construction: swapping the sample's answers swaps the two
orders' roles, and the mean and the difference are exactly antisymmetric in floating point, so the
verdict of ``swap(sample)`` is the flipped verdict of ``sample``, bit for bit (with a deterministic
backend), and the disagreement policy never applies. The per-order verdicts stay in
``both_orders.original`` / ``.swapped`` and ``consistent`` still compares those raw per-order
verdicts, so consistency measures the model's own position bias, not the aggregate's. The record
then also holds ``p_a_minus_p_b`` and ``tie_margin`` (``both_orders.debiased_winner`` is the
debiased verdict). A verdict-first template whose first token is a grade, not a winner (JudgeLM's
"s1 s2": the first token grades the answer shown first), is decided the same way from the expected
grades: each order gives the expected first-position grade of the answer it shows first, and
``p_a_minus_p_b`` is E[grade of A, shown first] − E[grade of B, shown first] over the width of the
template's scale (9 points for 1-10), so it lies in [−1, 1] and is antisymmetric under a swap exactly
as the mean probabilities are. When an order has neither (a format whose verdict does not come
first, a backend without log-probabilities) the pair falls back to the verdicts rule and
``aggregated_by="verdicts"`` with a ``fallback`` reason says so (``aggregated_by="probabilities"``
otherwise). Errors and parse failures win over both rules, as above.

:func:`per_order` lists the per-order judgments. Single-answer samples are judged once even with
``both_orders=True``.

Other meta keys of a Judgment: ``template_version``; ``cached`` (the completion came from the result
cache, so it cost nothing this run); ``cost_usd`` (when the backend prices calls); ``samples`` (one
``{"text", "winner", "scores"}`` per sample when ``decoding.n > 1``, aggregated by majority winner and
median scores); ``expected_score`` and ``scored_answer`` (for score-valued verdict probabilities: the
expected first score, and which answer of the sample, 0-based, that score is about); ``input_truncated``
with ``question_tokens_cut``, ``answer_tokens_cut`` (per answer, in the sample's order) and
``input_budget_tokens`` when the sample did not fit the backend's prompt budget.

Long inputs. With a backend that has a prompt budget (the transformers backend:
``prompt_token_budget(decoding)``, its ``max_seq_len`` less ``max_new_tokens``), a sample whose prompt
does not fit is shortened before it is rendered: its question first (start and end kept), its answers
only when the question is at its floor, both by one cap (:mod:`judgetrain.judging.truncation`; a cut
answer ends with the training marker :data:`judgetrain.data.tokenize.TRUNCATION_MARKER`). Both orders
show the same shortened texts. A sample that cannot fit even so is a ValueError naming it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from judgetrain.formats.base import JudgeFormat
from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request
from judgetrain.judging.truncation import InputCut, fit_sample, input_cut_meta

from judgetrain.types import WINNERS, BothOrders, JudgeSample, Judgment, ParseFailure, Verdict, flip_winner

# The card's tie-policy vocabulary, defined where the card is read (the card imports nothing of judging).
from judgetrain.card import AGGREGATIONS, DISAGREEMENT_POLICIES

if TYPE_CHECKING:
    from judgetrain.card import JudgeCard
    from judgetrain.judging.ranking import RerankResult

DEFAULT_TIE_MARGINS = tuple(round(0.05 * i, 2) for i in range(0, 20))
"""The tie margins :func:`choose_tie_margin` tries by default: 0, 0.05, …, 0.95."""

VERDICT_LINE_MAX_NEW_TOKENS = 32
"""Default generation budget when only the verdict line of a verdict-first format is generated."""

FULL_JUDGMENT_MAX_NEW_TOKENS = 512
"""Default generation budget when the whole judgment (critique and verdict) is generated."""

def _with_prompt_budget(backend: Backend) -> Any:
    """The backend (or the one a result cache wraps) that can say how many prompt tokens fit, else None."""
    for candidate in (backend, getattr(backend, "backend", None)):
        if candidate is not None and hasattr(candidate, "prompt_token_budget") and hasattr(candidate, "num_prompt_tokens"):
            return candidate
    return None


def verdict_options(fmt: JudgeFormat) -> dict[str, str] | None:
    """The verdict options whose first-token probabilities a backend can read from one forward pass
    over the prompt (the format's :meth:`~JudgeFormat.verdict_options`), or None when the format's
    verdict does not come first."""
    return fmt.verdict_options() if fmt.verdict_first else None


def default_decoding(fmt: JudgeFormat, *, stop_at_verdict: bool = True, max_new_tokens: int | None = None) -> Decoding:
    """Greedy decoding for ``fmt``: a verdict-first format stops after its verdict (its stop strings,
    a short budget) unless ``stop_at_verdict`` is False; other formats generate the whole judgment."""
    early = stop_at_verdict and fmt.verdict_first and bool(fmt.stop_strings())
    budget = max_new_tokens or (VERDICT_LINE_MAX_NEW_TOKENS if early else FULL_JUDGMENT_MAX_NEW_TOKENS)
    return Decoding(max_new_tokens=budget, stop=fmt.stop_strings() if early else (),
                    logprobs=verdict_options(fmt) is not None)


def _swap_sample(sample: JudgeSample) -> JudgeSample:
    """The sample with its answers exchanged. Judgment texts are dropped first: judging never shows
    them, and swapping them needs the template they were written in."""
    from judgetrain.data.augment import swap

    return swap(sample.replace(judgment=None, judgment_with_reference=None))


def _swap_keys(values: Mapping[str, float] | None) -> dict[str, float] | None:
    if values is None:
        return None
    return {flip_winner(k) if k in WINNERS else k: v for k, v in values.items()}


def _mapped_back(verdict: Verdict) -> Verdict:
    scores = tuple(reversed(verdict.scores)) if verdict.scores is not None else None
    return Verdict(winner=flip_winner(verdict.winner), scores=scores, critique=verdict.critique,
                   template=verdict.template, lenient=verdict.lenient)


def _majority_winner(winners: Sequence[str | None]) -> str | None:
    counts = Counter(w for w in winners if w is not None)
    if not counts:
        return None
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        # Equal votes for different winners: the samples do not prefer either answer.
        return "tie"
    return ranked[0][0]


def _median_scores(all_scores: Sequence[tuple[float | None, ...]]) -> tuple[float | None, ...] | None:
    if not all_scores:
        return None
    width = len(all_scores[0])
    out: list[float | None] = []
    for position in range(width):
        values = [s[position] for s in all_scores if len(s) == width and s[position] is not None]
        out.append(float(statistics.median(values)) if values else None)
    return tuple(out)


def _sum_or_none(values: Iterable[float | int | None]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def per_order(judgment: Judgment) -> list[Judgment]:
    """The per-order judgments of a both-orders Judgment (original first), or ``[judgment]``."""
    if judgment.both_orders is None:
        return [judgment]
    return [judgment.both_orders.original, judgment.both_orders.swapped]


def outcome_of(judgment: Judgment) -> str:
    """One word for what a judgment says: its winner ("A" / "B" / "tie"), "score" for a grade,
    "inconsistent", "parse_failure" or "error"."""
    if judgment.both_orders is not None and judgment.both_orders.outcome == "inconsistent":
        return "inconsistent"
    if judgment.error is not None:
        return "error"
    if judgment.parse_failure is not None:
        return "parse_failure"
    assert judgment.verdict is not None
    return judgment.verdict.winner if judgment.verdict.winner is not None else "score"


class Judge:
    """A judge: ``format`` (a JudgeFormat or its name) + ``backend``.

    Args:
        format: the judge template; samples are rendered and outputs parsed with it.
        backend: where requests go (``make_backend`` builds one from a spec).
        decoding: decoding settings; None takes :func:`default_decoding`. For a verdict-first format
            the format's stop strings are added when ``decoding.stop`` is empty and
            ``stop_at_verdict`` is True.
        both_orders: judge pairwise samples in both orders and aggregate (see the module doc).
        disagreement_policy: ``"tie"`` or ``"inconsistent"``: what a both-orders disagreement becomes.
        cache: a :class:`~judgetrain.judging.cache.ResultCache` or a path: finished calls are stored
            and never repeated.
        strict: parse with the strict parser only (default: strict, then lenient, and the verdict
            says when only the lenient parser read it).
        stop_at_verdict: for verdict-first formats, stop generating after the verdict.
        verdict_probabilities: ask the backend for the verdict-token log-probabilities where the
            format's verdict comes first.
        progress: show a progress bar (tqdm) while the backend works.
        aggregation: ``"verdicts"`` (default) or ``"probabilities"``: how a both-orders pair is
            decided (see the module doc); ``"probabilities"`` is position-free by construction.
        tie_margin: with ``aggregation="probabilities"``, the pair is a tie when |P(A) − P(B)| is at
            most this (:func:`choose_tie_margin` picks it on a dev split).
    """

    def __init__(self, format: JudgeFormat | str, backend: Backend, decoding: Decoding | None = None, *,
                 both_orders: bool = False, disagreement_policy: str = "tie", cache: Any = None,
                 strict: bool = False, stop_at_verdict: bool = True, verdict_probabilities: bool = True,
                 progress: bool = False, aggregation: str = "verdicts", tie_margin: float = 0.0):
        if isinstance(format, str):
            from judgetrain import formats

            format = formats.get(format)
        if disagreement_policy not in DISAGREEMENT_POLICIES:
            raise ValueError(f"disagreement_policy must be one of {DISAGREEMENT_POLICIES}, got {disagreement_policy!r}")
        check_aggregation(aggregation, tie_margin)
        self.format = format
        self.both_orders = both_orders
        self.disagreement_policy = disagreement_policy
        self.aggregation = aggregation
        self.tie_margin = float(tie_margin)
        self.strict = strict
        self.progress = progress
        self.verdict_options = verdict_options(format) if verdict_probabilities else None
        if decoding is None:
            decoding = default_decoding(format, stop_at_verdict=stop_at_verdict)
        elif stop_at_verdict and format.verdict_first and not decoding.stop and format.stop_strings():
            decoding = Decoding(**{**decoding.to_dict(), "stop": format.stop_strings()})
        if self.verdict_options is not None and not decoding.logprobs:
            decoding = Decoding(**{**decoding.to_dict(), "logprobs": True})
        if self.verdict_options is None and decoding.logprobs:
            decoding = Decoding(**{**decoding.to_dict(), "logprobs": False})
        self.decoding = decoding
        self._budget_backend = _with_prompt_budget(backend)
        if cache is not None:
            from judgetrain.judging.cache import CachingBackend

            backend = backend if isinstance(backend, CachingBackend) else CachingBackend(backend, cache)
        self.backend = backend

    card: "JudgeCard | None" = None
    """The judge card this judge was built from (:meth:`from_card`), else None."""

    kind = "generative"
    """The judge kind (:class:`judgetrain.judging.protocol.JudgeProtocol`): this one writes its judgment."""

    @classmethod
    def from_card(cls, path_or_url: Any, *, card: Any = None, backend_name: str | None = None, model: str | None = None,
                  batch_size: int = 8, dtype: str | None = None, api_key_env: str | None = None, progress: bool = False,
                  **options: Any) -> "Judge":
        """The judge an export describes: a local export dir (transformers backend, or ``backend_name="vllm"``)
        or the ``http://`` URL of an OpenAI-compatible server of one (its card from ``GET /v1/judge_card``,
        or ``card=`` a local export dir / judge_card.json). Template, parser mode, both-orders policy,
        aggregation and tie margin, and decoding come from the card
        (:meth:`judgetrain.card.JudgeCard.judge_options`); ``options`` override Judge arguments. A reward
        card gives its :class:`~judgetrain.reward.judge.RewardJudge`. Commands build judges through
        :func:`judgetrain.judging.protocol.judge_from_card`, which also checks their flags against the card."""
        from judgetrain.judging.card_target import generative_backend, load_card

        loaded = load_card(path_or_url, card=card, api_key_env=api_key_env)
        if loaded.kind == "reward":
            from judgetrain.reward.judge import RewardJudge

            return RewardJudge.from_card(path_or_url, card=loaded, model=model, batch_size=batch_size, dtype=dtype,
                                         api_key_env=api_key_env, progress=progress, backend_name=backend_name, **options)
        backend = generative_backend(path_or_url, backend_name=backend_name, model=model, batch_size=batch_size, dtype=dtype,
                                     api_key_env=api_key_env)
        try:
            judge = cls(loaded.template, backend, **{**loaded.judge_options(), "progress": progress, **options})
        except BaseException:
            backend.close()  # a bad option must not leave the model loaded
            raise
        judge.card = loaded
        return judge

    def compare(self, question: str, answer_a: str, answer_b: str, **options: Any) -> Judgment:
        """Judge two answers in both orders (:func:`judgetrain.judging.ranking.compare`)."""
        from judgetrain.judging.ranking import compare

        return compare(self, question, answer_a, answer_b, **options)

    def rerank(self, question: str, candidates: Sequence[str], **options: Any) -> "RerankResult":
        """Best-of-n pick among ``candidates`` (:func:`judgetrain.judging.ranking.rerank`)."""
        from judgetrain.judging.ranking import rerank

        return rerank(self, question, candidates, **options)

    def close(self) -> None:
        """Release the backend (its model, threads, HTTP connections)."""
        self.backend.close()

    # --- requests ----------------------------------------------------------------------------
    def shown_samples(self, sample: JudgeSample) -> list[JudgeSample]:
        """The sample as shown to the judge: once, or as is and swapped for a both-orders pairwise judge."""
        if self.both_orders and sample.protocol == "pairwise":
            return [sample, _swap_sample(sample)]
        return [sample]

    def fit(self, sample: JudgeSample) -> tuple[JudgeSample, InputCut | None]:
        """``sample`` shortened (question first) so that every order of it fits the backend's prompt
        budget, and what was cut; the sample itself and None when it fits or the backend has no budget."""
        source = self._budget_backend
        budget = source.prompt_token_budget(self.decoding) if source is not None else None
        if budget is None:
            return sample, None
        from judgetrain.data.tokenize import TRUNCATION_MARKER

        def longest_prompt(candidate: JudgeSample) -> int:
            return max(source.num_prompt_tokens(self.request(shown).messages) for shown in self.shown_samples(candidate))

        return fit_sample(sample, longest_prompt, source.tokenizer, budget, answer_marker=TRUNCATION_MARKER,
                          how_to_fit=f"raise the backend's max_seq_len or lower decoding.max_new_tokens ({self.decoding.max_new_tokens})")

    def request(self, shown: JudgeSample) -> Request:
        """The chat request for one shown sample (the format's prompt messages, no target)."""
        messages = tuple(self.format.render(shown, include_target=False))
        return Request(messages=messages, decoding=self.decoding, verdict_options=self.verdict_options)

    # --- judging ------------------------------------------------------------------------------
    def judge(self, samples: Sequence[JudgeSample]) -> list[Judgment]:
        """One Judgment per sample, in order. Every sample is checked against the format before any
        call is made, so a bad sample fails fast (ValueError naming it)."""
        plan: list[tuple[int, bool, InputCut | None]] = []  # (sample index, swapped, what was cut) per request
        requests: list[Request] = []
        for index, sample in enumerate(samples):
            fitted, cut = self.fit(sample)
            for shown in self.shown_samples(fitted):
                requests.append(self.request(shown))
                plan.append((index, shown is not fitted, cut))
        completions = self._generate(requests)
        per_sample: list[list[Judgment]] = [[] for _ in samples]
        for (index, swapped, cut), request, completion in zip(plan, requests, completions):
            per_sample[index].append(self.judgment_of(samples[index], request, completion, swapped=swapped, input_cut=cut))
        return [parts[0] if len(parts) == 1 else self.aggregate(samples[i], parts[0], parts[1])
                for i, parts in enumerate(per_sample)]

    def _generate(self, requests: list[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        stream = self.backend.generate_iter(requests)
        if self.progress:
            from tqdm.auto import tqdm

            stream = tqdm(stream, total=len(requests), desc=f"judging ({self.format.name})", unit="call")
        for index, completion in stream:
            out[index] = completion
        missing = [i for i, c in enumerate(out) if c is None]
        assert not missing, f"backend {self.backend.name} gave no completion for requests {missing[:5]}"
        return out  # type: ignore[return-value]

    def parse(self, text: str) -> Verdict | ParseFailure:
        return self.format.parse(text, strict=self.strict)

    def judgment_of(self, sample: JudgeSample, request: Request, completion: Completion, *, swapped: bool = False,
                    input_cut: InputCut | None = None) -> Judgment:
        """The Judgment of one completion of ``request`` for ``sample`` (shown swapped or not);
        ``input_cut`` is what :meth:`fit` cut from the sample to build the request."""
        meta: dict[str, Any] = {"template_version": self.format.version, "cached": completion.cached}
        if input_cut is not None:
            meta.update(input_cut.to_meta())
        if completion.cost_usd is not None:
            meta["cost_usd"] = completion.cost_usd
        common = dict(
            sample_id=sample.id, template=self.format.name, raw_text=completion.text, swapped=swapped,
            prompt_messages=request.messages, prompt_text=completion.prompt_text, backend=self.backend.name,
            model=self.backend.model_id, decoding=request.decoding.to_dict(), latency_seconds=completion.latency_seconds,
            tokens_in=completion.tokens_in, tokens_out=completion.tokens_out,
        )
        if completion.error is not None:
            return Judgment(error=completion.error, meta=meta, **common)
        result = self._read_texts(completion, meta)
        logprobs, probabilities = self._probabilities(completion, meta, swapped=swapped, single=sample.protocol == "single")
        if isinstance(result, Verdict) and swapped:
            result = _mapped_back(result)
        fields = {"verdict": result} if isinstance(result, Verdict) else {"parse_failure": result}
        return Judgment(verdict_logprobs=logprobs, verdict_probabilities=probabilities, meta=meta, **fields, **common)

    def _read_texts(self, completion: Completion, meta: dict[str, Any]) -> Verdict | ParseFailure:
        texts = completion.texts or [completion.text]
        first = self.parse(completion.text or texts[0])
        if len(texts) <= 1:
            return first
        # n samples (an API judge that drifts): majority winner, median scores.
        parsed = [self.parse(t) for t in texts]
        meta["samples"] = [
            {"text": t, "winner": p.winner if isinstance(p, Verdict) else None,
             "scores": list(p.scores) if isinstance(p, Verdict) and p.scores is not None else None}
            for t, p in zip(texts, parsed)
        ]
        verdicts = [p for p in parsed if isinstance(p, Verdict)]
        if not verdicts:
            return first
        winner = _majority_winner([v.winner for v in verdicts])
        scores = _median_scores([v.scores for v in verdicts if v.scores is not None])
        critique_from = next((v for v in verdicts if v.winner == winner), verdicts[0])
        return Verdict(winner=winner, scores=scores, critique=critique_from.critique, template=self.format.name,
                       lenient=any(v.lenient for v in verdicts))

    def _probabilities(self, completion: Completion, meta: dict[str, Any], *, swapped: bool,
                       single: bool) -> tuple[dict[str, float] | None, dict[str, float] | None]:
        logprobs = completion.verdict_logprobs
        if not logprobs:
            return None, None
        finite = {k: v for k, v in logprobs.items() if v is not None and math.isfinite(v)}
        if not finite:
            return dict(logprobs), None
        top = max(finite.values())
        weights = {k: math.exp(v - top) for k, v in finite.items()}
        total = sum(weights.values())
        probabilities = {k: w / total for k, w in weights.items()}
        if set(probabilities) <= set(WINNERS):
            if swapped:
                return _swap_keys(logprobs), _swap_keys(probabilities)
            return dict(logprobs), probabilities
        try:
            meta["expected_score"] = sum(float(k) * p for k, p in probabilities.items())
        except ValueError:  # options that are neither winners nor numbers: no expectation
            return dict(logprobs), probabilities
        # The first generated number grades the answer shown first: the sample's second when swapped.
        meta["scored_answer"] = 0 if single or not swapped else 1
        return dict(logprobs), probabilities

    # --- both orders --------------------------------------------------------------------------
    def aggregate(self, sample: JudgeSample, original: Judgment, swapped: Judgment) -> Judgment:
        """The per-sample Judgment of a both-orders judge (see the module doc for the record)."""
        policy = self.disagreement_policy
        first, second = original.winner, swapped.winner
        consistent = (first == second) if first is not None and second is not None else None
        meta: dict[str, Any] = {
            "template_version": self.format.version,
            "cached": bool(original.meta.get("cached")) and bool(swapped.meta.get("cached")),
        }
        cost = _sum_or_none([original.meta.get("cost_usd"), swapped.meta.get("cost_usd")])
        if cost is not None:
            meta["cost_usd"] = cost
        # Both orders show the same shortened texts, so the original order's record is the pair's.
        meta.update(input_cut_meta(original.meta))
        common = dict(
            sample_id=sample.id, template=self.format.name, raw_text=original.raw_text, swapped=False,
            prompt_messages=original.prompt_messages, prompt_text=original.prompt_text, backend=original.backend,
            model=original.model, decoding=original.decoding,
            latency_seconds=_sum_or_none([original.latency_seconds, swapped.latency_seconds]),
            tokens_in=_sum_or_none([original.tokens_in, swapped.tokens_in]),
            tokens_out=_sum_or_none([original.tokens_out, swapped.tokens_out]),
        )
        fields: dict[str, Any]
        probabilities = self._mean_winner_probabilities(original, swapped)
        grade_difference = self._first_grade_difference(original, swapped) if probabilities is None else None
        aggregation: dict[str, Any] = {}
        if self.aggregation == "probabilities" and probabilities is None and grade_difference is None:
            aggregation = {"fallback": "an order has no winner probabilities (A / B / tie) nor an expected first grade, "
                                       "so the verdicts rule decided"}
        errors = [f"{name} order: {j.error}" for name, j in (("original", original), ("swapped", swapped)) if j.error is not None]
        failures = [(name, j) for name, j in (("original", original), ("swapped", swapped)) if j.parse_failure is not None]
        if errors:
            outcome, fields = "error", {"error": "; ".join(errors)}
        elif failures:
            name, failed = failures[0]
            assert failed.parse_failure is not None
            outcome = "parse_failure"
            fields = {"parse_failure": ParseFailure(raw_text=failed.raw_text, reason=f"{name} order: {failed.parse_failure.reason}",
                                                    template=failed.parse_failure.template)}
        elif self.aggregation == "probabilities" and (probabilities is not None or grade_difference is not None):
            assert original.verdict is not None and swapped.verdict is not None
            winner, difference = winner_from_probabilities(
                probabilities if probabilities is not None else {"A": grade_difference, "B": 0.0}, self.tie_margin)
            outcome = winner
            fields = {"verdict": Verdict(winner=winner, scores=self._mean_scores(original.verdict, swapped.verdict),
                                         critique=original.verdict.critique, template=self.format.name,
                                         lenient=original.verdict.lenient or swapped.verdict.lenient)}
            aggregation = {"aggregated_by": "probabilities", "p_a_minus_p_b": difference, "tie_margin": self.tie_margin}
        elif consistent is False and policy == "inconsistent":
            outcome, fields = "inconsistent", {}
        else:
            assert original.verdict is not None and swapped.verdict is not None
            winner = first if consistent else ("tie" if consistent is False else first)
            outcome = winner if winner is not None else "score"
            fields = {"verdict": Verdict(winner=winner, scores=self._mean_scores(original.verdict, swapped.verdict),
                                         critique=original.verdict.critique, template=self.format.name,
                                         lenient=original.verdict.lenient or swapped.verdict.lenient)}
        record = BothOrders(original=original, swapped=swapped, policy=policy, outcome=outcome,
                            aggregation=self.aggregation, **aggregation)
        return Judgment(verdict_probabilities=probabilities, both_orders=record, meta=meta, **fields, **common)

    @staticmethod
    def _mean_scores(first: Verdict, second: Verdict) -> tuple[float | None, ...] | None:
        a, b = first.scores, second.scores
        if a is None or b is None or len(a) != len(b) or any(s is None for s in a + b):
            return a
        return tuple((x + y) / 2 for x, y in zip(a, b))  # type: ignore[operator]

    def _first_grade_difference(self, original: Judgment, swapped: Judgment) -> float | None:
        """E[grade of A, shown first] − E[grade of B, shown first] over the scale's width, from each
        order's expected first-position grade; None unless both orders have one for the answer it
        showed first."""
        scale = self.format.score_scale
        first, second = original.meta.get("expected_score"), swapped.meta.get("expected_score")
        if scale is None or first is None or second is None:
            return None
        if (original.meta.get("scored_answer"), swapped.meta.get("scored_answer")) != (0, 1):
            return None
        return (first - second) / (scale[1] - scale[0])

    @staticmethod
    def _mean_winner_probabilities(first: Judgment, second: Judgment) -> dict[str, float] | None:
        p, q = first.verdict_probabilities, second.verdict_probabilities
        if not p or not q or not set(p) <= set(WINNERS) or set(p) != set(q):
            return None
        return {k: (p[k] + q[k]) / 2 for k in p}


def check_aggregation(aggregation: str, tie_margin: float) -> None:
    """ValueError unless ``aggregation`` is one of :data:`AGGREGATIONS` and ``tie_margin`` a finite
    number >= 0; a warning when the margin has no effect (``aggregation="verdicts"``)."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if isinstance(tie_margin, bool) or not isinstance(tie_margin, (int, float)) or not math.isfinite(tie_margin) or tie_margin < 0:
        raise ValueError(f"tie_margin must be a finite number >= 0 (a difference of probabilities), got {tie_margin!r}")
    if aggregation == "verdicts" and tie_margin:
        import warnings

        warnings.warn(f"tie_margin={tie_margin} has no effect with aggregation='verdicts'; use aggregation='probabilities'",
                      stacklevel=3)


def winner_from_probabilities(probabilities: Mapping[str, float], tie_margin: float) -> tuple[str, float]:
    """(winner, P(A) − P(B)): A when the difference is > ``tie_margin``, B when < −``tie_margin``,
    else a tie. An option missing from ``probabilities`` counts as probability 0."""
    difference = probabilities.get("A", 0.0) - probabilities.get("B", 0.0)
    if difference > tie_margin:
        return "A", difference
    if difference < -tie_margin:
        return "B", difference
    return "tie", difference


def choose_tie_margin(differences: Sequence[float], gold: Sequence[str | None],
                      margins: Sequence[float] = DEFAULT_TIE_MARGINS) -> tuple[float, float]:
    """(margin, accuracy): the tie margin from ``margins`` (0 is always tried) whose verdicts
    (:func:`winner_from_probabilities` on each item's P(A) − P(B) in ``differences``) agree most often
    with the ``gold`` winners ("A" / "B" / "tie"); equal accuracies go to the smaller margin.

    Pick it on a dev split, then judge with ``Judge(..., aggregation="probabilities", tie_margin=m)``
    or export it into the card (``judgetrain export --aggregation probabilities --tie-margin m``).
    Items with no gold winner (None) are left out of the accuracy."""
    if len(differences) != len(gold):
        raise ValueError(f"{len(differences)} differences but {len(gold)} gold labels; give one of each per item")
    scored = [(d, g) for d, g in zip(differences, gold) if g is not None]
    if not scored:
        raise ValueError("no item has a gold winner to choose the tie margin on")
    unknown = sorted({g for _, g in scored} - set(WINNERS))
    if unknown:
        raise ValueError(f"gold winners must be one of {WINNERS}, got {unknown}")
    candidates = sorted({0.0, *(float(m) for m in margins)})
    for margin in candidates:
        check_aggregation("probabilities", margin)
    best_margin, best_accuracy = 0.0, -1.0
    for margin in candidates:
        accuracy = sum(winner_from_probabilities({"A": d, "B": 0.0}, margin)[0] == g for d, g in scored) / len(scored)
        # Strictly better only: candidates ascend, so a tie in accuracy keeps the smaller margin.
        if accuracy > best_accuracy:
            best_margin, best_accuracy = margin, accuracy
    return best_margin, best_accuracy


def summarize(judgments: Sequence[Judgment]) -> dict[str, Any]:
    """Counts for a run: outcomes, parse failures, errors, both-orders consistency, tokens, cost."""
    outcomes = Counter(outcome_of(j) for j in judgments)
    both = [j.both_orders for j in judgments if j.both_orders is not None]
    comparable = [b for b in both if b.consistent is not None]
    calls = [part for j in judgments for part in per_order(j)]
    return {
        "num_judgments": len(judgments),
        "outcomes": dict(sorted(outcomes.items())),
        "num_parse_failures": outcomes.get("parse_failure", 0),
        "num_errors": outcomes.get("error", 0),
        "num_lenient": sum(1 for j in judgments if j.verdict is not None and j.verdict.lenient),
        "num_calls": len(calls),
        "num_cached_calls": sum(1 for c in calls if c.meta.get("cached")),
        "both_orders_items": len(both),
        "consistency": (sum(1 for b in comparable if b.consistent) / len(comparable)) if comparable else None,
        "tokens_in": _sum_or_none(c.tokens_in for c in calls),
        "tokens_out": _sum_or_none(c.tokens_out for c in calls),
        # A cached call was paid for by an earlier run.
        "cost_usd": _sum_or_none(c.meta.get("cost_usd") for c in calls if not c.meta.get("cached")),
    }
