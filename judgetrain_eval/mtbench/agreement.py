"""``agreement``: a judge's MT-bench votes against the expert votes, per turn, as in the MT-bench
paper's Table 2 (FastChat ``compute_agreement.py``), with :func:`judgetrain.metrics.mtbench_agreement`.

Human votes: a file (or hub id, split ``human``) of ``lmsys/mt_bench_human_judgments`` rows; only the
``expert_*`` judges count as "human" (FastChat leaves the ``author_*`` votes out). As in FastChat,
every winner containing "tie" is a tie: "tie (bothbad)" in the human votes, "tie (inconsistent)" (the
two orders disagreed) in the ``gpt4_pair`` split.

Judge votes, from any of:

- a pairwise judgment file (``g1_winner`` / ``g2_winner``): one vote per match, FastChat's
  conservative rule (:func:`judgetrain.metrics.combine_orders`): the verdict when both orders agree,
  a tie when they disagree; no vote (a parse failure) when either order is an ``error``;
- a single-grading judgment file (``score``): for every (question, model pair, turn) the experts voted
  on, the two grades compared with FastChat's :data:`TIE_DELTA` rule;
- rows in the human-judgment schema (``model_a``, ``model_b``, ``winner``), e.g. the ``gpt4_pair`` split.

S1 keeps every comparison (ties included); S2 leaves out a comparison when either vote is a tie. Each
expert vote on a pair is one comparison. The human-human row compares the experts with one another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from judgetrain_eval.mtbench.data import TIE_DELTA, read_jsonl
from judgetrain import metrics
from judgetrain.metrics import Vote

HUMAN = "human"
JUDGE = "judge"
EXPERT_PREFIX = "expert"
PAIR_WINNERS = {"model_1": "A", "model_2": "B", "tie": "tie", "error": None}


def human_votes(source: str) -> list[Vote]:
    """The expert votes of a human-judgment file or hub dataset (split ``human``)."""
    from judgetrain_data_prep.mtbench import read
    from judgetrain.data.rows import ReadReport

    split = None if Path(source).exists() else "human"
    votes = []
    for sample in read(source, split=split, report=ReadReport(source=source)):
        judge = str(sample.meta.get("judge", ""))
        if not judge.startswith(EXPERT_PREFIX):
            continue
        label = next(iter(sample.labels.values()))
        votes.append(Vote(question_id=sample.meta["question_id"], model_a=sample.answers[0].model or "",
                          model_b=sample.answers[1].model or "", turn=sample.turn or 1, judge=HUMAN,
                          winner=label.winner))
    if not votes:
        raise ValueError(f"--human {source}: no expert_* votes; give the MT-bench human judgments (split 'human')")
    return votes


def judge_votes(path: str | Path, human: Sequence[Vote], *, judge_name: str | None = None,
                tie_delta: float = TIE_DELTA) -> list[Vote]:
    """The judge's votes read from a judgment file of any of the three kinds (see the module doc)."""
    from judgetrain_data_prep.mtbench import vote_winner
    from judgetrain.data.fields import RowError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--judgments {path}: no such file")
    rows = list(read_jsonl(path))
    if not rows:
        raise ValueError(f"--judgments {path}: the file is empty")
    judges = {str(r["judge"][0]) for _, r in rows if isinstance(r.get("judge"), list) and r.get("judge")}
    if judge_name is None and len(judges) > 1 and "g1_winner" in rows[0][1]:
        raise ValueError(f"--judgments {path} holds several judges {sorted(judges)}: pick one with --judge-name")
    votes: list[Vote] = []
    grades: dict[tuple[str, str, int], float] = {}
    for number, row in rows:
        where = f"{path}:{number}"
        judge = row.get("judge")
        if judge_name is not None and isinstance(judge, list) and judge and judge[0] != judge_name:
            continue
        turn = int(row.get("turn", 1))
        if "g1_winner" in row:
            for name in ("question_id", "model_1", "model_2", "g2_winner"):
                if name not in row:
                    raise ValueError(f"{where}: missing field {name!r} of a FastChat pairwise judgment row")
            g1, g2 = (_pair_winner(row[name], where, name) for name in ("g1_winner", "g2_winner"))
            votes.append(Vote(row["question_id"], row["model_1"], row["model_2"], turn, JUDGE,
                              metrics.combine_orders(g1, g2)))
        elif "score" in row:
            for name in ("question_id", "model"):
                if name not in row:
                    raise ValueError(f"{where}: missing field {name!r} of a FastChat single-grading row")
            grades[(str(row["question_id"]), row["model"], turn)] = float(row["score"])
        elif "winner" in row:
            if str(row.get("judge", "")).startswith(("expert", "author")):
                continue  # the human votes of a human-judgment file are not the judge's
            for name in ("question_id", "model_a", "model_b"):
                if name not in row:
                    raise ValueError(f"{where}: missing field {name!r} of a human-judgment schema row")
            try:
                winner, _ = vote_winner(row["winner"])
            except RowError as err:
                raise ValueError(f"{where}: {err}") from None
            votes.append(Vote(row["question_id"], row["model_a"], row["model_b"], turn, JUDGE, winner))
        else:
            raise ValueError(f"{where}: not a judgment row: expected g1_winner/g2_winner (pairwise), score (single) "
                             f"or winner (human-judgment schema)")
    if grades:
        pairs = {(v.question_id, *sorted((v.model_a, v.model_b)), v.turn) for v in human}
        for qid, model_a, model_b, turn in sorted(pairs, key=str):
            s_a, s_b = grades.get((str(qid), model_a, turn)), grades.get((str(qid), model_b, turn))
            if s_a is None or s_b is None:
                continue
            if s_a == -1 or s_b == -1:
                winner = None
            elif abs(s_a - s_b) <= tie_delta:
                winner = "tie"
            else:
                winner = "A" if s_a > s_b else "B"
            votes.append(Vote(qid, model_a, model_b, turn, JUDGE, winner))
    return votes


def _pair_winner(value: Any, where: str, name: str) -> str | None:
    """The vote of one order of a FastChat pairwise judgment (None for ``error``); a winner containing
    "tie" is a tie, as FastChat counts it."""
    if isinstance(value, str) and value in PAIR_WINNERS:
        return PAIR_WINNERS[value]
    if isinstance(value, str) and "tie" in value:
        return "tie"
    raise ValueError(f"{where}: {name} {value!r:.80} is not one of {sorted(PAIR_WINNERS)} (or a tie kind such as 'tie (inconsistent)')")


def agreement_table(judge: Sequence[Vote], human: Sequence[Vote], *, turns: Sequence[int] = (1, 2),
                    policy: str = "wrong") -> dict[str, dict[str, dict[str, Any]]]:
    """{"judge-human" | "human-human": {"turn N": {s1, s1_agree, s1_total, s2, s2_agree, s2_total}}}."""
    votes = list(judge) + list(human)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row_name, first in (("judge-human", JUDGE), ("human-human", HUMAN)):
        per_turn = {}
        for turn in turns:
            entry: dict[str, Any] = {}
            for name, with_ties in (("s1", True), ("s2", False)):
                agree, total = metrics.mtbench_agreement(votes, first, HUMAN, turn=turn, with_ties=with_ties, policy=policy)
                entry.update({name: agree / total if total else None, f"{name}_agree": agree, f"{name}_total": total})
            per_turn[f"turn {turn}"] = entry
        out[row_name] = per_turn
    return out
