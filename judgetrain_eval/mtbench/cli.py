"""``judgetrain mtbench``: MT-bench end to end, in FastChat ``llm_judge``'s layout.

    judgetrain mtbench gen-answers --model PATH|openai:MODEL --model-id ID --out-dir DIR [--bench-name mt_bench]
        [--data-dir DIR] [--num-choices N] [--max-new-tokens N] [--backend hf|vllm|openai] [--question-limit N]
    judgetrain mtbench judge --mode single|pairwise-baseline|pairwise-all --model-list ID... --judge openai:MODEL|DIR|URL|tiny
        --out-dir DIR [--baseline ID] [--parallel N] [--judge-name NAME]
    judgetrain mtbench show --mode single|pairwise-baseline|pairwise-all --out-dir DIR [--judge-name NAME] [--from-single]
    judgetrain mtbench agreement --judgments FILE --human FILE|HUB_ID

Questions and reference answers come from ``--data-dir`` (default: the MT-bench copies shipped with
judgetrain); answers and judgments go to ``--out-dir`` (default: ``--data-dir``), under ``<bench>/``.

``mtbench judge --judge`` an export dir or a served judge's URL builds the judge from its card
(:func:`judgetrain.judging.protocol.judge_from_card`). A generative judge must have been trained on
one of FastChat's MT-bench templates of the mode's protocol (``mtbench-pair-*`` for the pairwise
modes, ``mtbench-single-*`` for ``single``); each match is judged with its FastChat variant of that
template (math, multi-turn) under the card's parser, tie policy and decoding. A reward judge compares
each pair of answers by their rewards, on the conversation up to the judged turn; it has no 1-10
rating, so ``--mode single`` is refused for it.
"""

from __future__ import annotations

HELP = "MT-bench: generate answers, judge them, show results, agreement"

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from judgetrain.types import JudgeSample

ACTIONS = ("gen-answers", "judge", "show", "agreement")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench-name", default="mt_bench", help="the benchmark dir under the data dir (default mt_bench)")
    parser.add_argument("--data-dir", help="dir holding <bench>/question.jsonl (default: the packaged MT-bench)")
    parser.add_argument("--out-dir", help="dir to write <bench>/model_answer and model_judgment into (default: --data-dir)")
    parser.add_argument("--question-limit", type=int, help="only the first N questions")
    parser.add_argument("--question-id", nargs="+", help="only these question ids")


def _backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="openai: the API root up to /v1")
    parser.add_argument("--api-key-env", help="openai: the environment variable holding the API key")
    parser.add_argument("--batch-size", type=int, help="hf: prompts per batch")
    parser.add_argument("--dtype", help="hf / vllm: fp32, bf16 or auto")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    sub = parser.add_subparsers(dest="mtbench_command", metavar="ACTION")

    gen = sub.add_parser("gen-answers", help="answer both turns of every question with a model")
    gen.add_argument("--model", required=True, help="model dir / hub id / tiny / embedded:smollm2-135m, or openai:MODEL")
    gen.add_argument("--model-id", required=True, help="the answering model's name: the answer file is <ID>.jsonl")
    gen.add_argument("--backend", choices=("hf", "vllm", "openai"), help="where the model runs (default: from --model)")
    gen.add_argument("--num-choices", type=int, default=1, help="answers per question (choice i samples with seed i)")
    gen.add_argument("--max-new-tokens", type=int, default=1024, help="generation budget per turn (FastChat: 1024)")
    gen.add_argument("--parallel", type=int, help="openai: concurrent API calls")
    _common(gen)
    _backend(gen)

    judge = sub.add_parser("judge", help="grade or compare the answers with FastChat's judge prompts")
    judge.add_argument("--mode", choices=("single", "pairwise-baseline", "pairwise-all"), default="single")
    judge.add_argument("--model-list", nargs="+", help="models to judge (default: every answer file)")
    judge.add_argument("--judge", required=True, help="openai:MODEL, an export or checkpoint dir, vllm:DIR, or tiny")
    judge.add_argument("--judge-name", help="the judge's name in the file names and rows (default: from --judge)")
    judge.add_argument("--baseline", default="gpt-3.5-turbo", help="pairwise-baseline: the baseline model")
    judge.add_argument("--parallel", type=int, help="openai: concurrent API calls; hf: prompts per batch")
    judge.add_argument("--max-new-tokens", type=int,
                       help="judge generation budget (default: FastChat's 2048; a judge card's own)")
    judge.add_argument("--cache", help="result cache file (default: $JUDGETRAIN_RESULT_CACHE or the user cache)")
    judge.add_argument("--no-cache", action="store_true", help="do not use a result cache")
    _common(judge)
    _backend(judge)

    show = sub.add_parser("show", help="score tables, win rates and a radar plot from the judgments")
    show.add_argument("--mode", choices=("single", "pairwise-baseline", "pairwise-all"), default="single")
    show.add_argument("--judge-name", default="gpt-4", help="whose judgments: <judge>_single/_pair.jsonl (default gpt-4)")
    show.add_argument("--input-file", help="the judgment file (default: from --judge-name and --mode)")
    show.add_argument("--baseline", default="gpt-3.5-turbo", help="pairwise-baseline: the baseline model")
    show.add_argument("--model-list", nargs="+", help="only these models")
    show.add_argument("--from-single", action="store_true",
                      help="pairwise modes: compare the single grades (a tie within 0.1), not a pair file")
    show.add_argument("--plot", help="radar plot PNG (default: <out dir>/<bench>/model_judgment/<judge>_<mode>_radar.png)")
    show.add_argument("--no-plot", action="store_true", help="no radar plot")
    show.add_argument("--json", help="also write the tables as JSON here")
    _common(show)

    agree = sub.add_parser("agreement", help="S1/S2 agreement of a judge with the MT-bench expert votes, per turn")
    agree.add_argument("--judgments", required=True, help="a FastChat judgment file (pair or single) or human-schema votes")
    agree.add_argument("--human", required=True, help="human judgments file, or hub id lmsys/mt_bench_human_judgments")
    agree.add_argument("--judge-name", help="only this judge's rows of --judgments")
    agree.add_argument("--parse-failures", choices=("wrong", "exclude"), default="wrong",
                       help="a judge vote that did not parse counts as a disagreement (default) or is left out")
    agree.add_argument("--json", help="also write the table as JSON here")


def _dirs(args: argparse.Namespace) -> tuple[Path | None, Path]:
    from judgetrain_eval.mtbench.data import bench_dir

    out = args.out_dir or args.data_dir
    if out is None:
        raise ValueError("give --out-dir DIR (where <bench>/model_answer and model_judgment are written); "
                         "the packaged questions are read-only")
    return (Path(args.data_dir) if args.data_dir else None), bench_dir(out, args.bench_name)


def _questions(args: argparse.Namespace) -> list[dict]:
    from judgetrain_eval.mtbench.data import load_questions, select_questions

    return select_questions(load_questions(args.data_dir, args.bench_name), question_ids=args.question_id,
                            limit=args.question_limit)


def _make_backend(spec: str, args: argparse.Namespace, parallel: int | None):
    from judgetrain.judging import make_backend

    if spec.startswith("openai:"):
        if args.batch_size is not None or args.dtype is not None:
            raise ValueError("--batch-size and --dtype apply to local models; drop them for openai:MODEL")
        return make_backend(spec, base_url=args.base_url, api_key_env=args.api_key_env, max_concurrency=parallel)
    if args.base_url or args.api_key_env:
        raise ValueError("--base-url and --api-key-env apply to openai:MODEL")
    if spec.startswith("vllm:"):
        return make_backend(spec, dtype=args.dtype)
    return make_backend(spec, batch_size=args.batch_size or parallel, dtype=args.dtype)


def _gen_answers(args: argparse.Namespace) -> int:
    from judgetrain_eval.mtbench.answers import generate_answers

    for name in ("num_choices", "max_new_tokens"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    model = args.model
    prefix = model.partition(":")[0]
    if args.backend is not None and prefix not in ("hf", "vllm", "openai"):
        model = f"{args.backend}:{model}"
    elif args.backend is not None and prefix != args.backend:
        raise ValueError(f"--model {args.model} names backend {prefix!r} but --backend is {args.backend!r}")
    _, out_bench = _dirs(args)
    questions = _questions(args)
    backend = _make_backend(model, args, args.parallel)
    try:
        result = generate_answers(backend, questions, model_id=args.model_id,
                                  answer_file=out_bench / "model_answer" / f"{args.model_id}.jsonl",
                                  num_choices=args.num_choices, max_new_tokens=args.max_new_tokens)
    finally:
        backend.close()
    print(f"{result.num_answered} answered, {result.num_skipped} already there, {result.num_failed} failed "
          f"-> {result.answer_file}")
    for failure in result.failures[:5]:
        print(f"  failed: {failure}", file=sys.stderr)
    return 1 if result.num_failed else 0


def default_judge_name(spec: str) -> str:
    """The judge's name in file names: the API model id, ``tiny``, or the model dir's name."""
    prefix, _, rest = spec.partition(":")
    if prefix in ("openai", "hf", "vllm") and rest:
        spec = rest
    return Path(spec.rstrip("/")).name or spec


def up_to_turn(sample: "JudgeSample") -> "JudgeSample":
    """``sample`` cut to the turns up to the one judged (``sample.turn``): what a reward judge scores."""
    from judgetrain.types import Answer

    if sample.turn is None:
        return sample
    keep = sample.turn
    questions = sample.question_turns[:keep]
    answers = tuple(Answer(a.turns[:keep], model=a.model) for a in sample.answers)
    return sample.replace(question=questions, answers=answers, reference=None, turn=None)


class _UpToTurn:
    """A reward judge on MT-bench matches: each match's conversation is scored up to its judged turn."""

    def __init__(self, judge: Any) -> None:
        self.reward_judge = judge

    def judge(self, samples: list["JudgeSample"]) -> list[Any]:
        return self.reward_judge.judge([up_to_turn(s) for s in samples])


def card_judge_for(args: argparse.Namespace, cache: Any) -> tuple[Callable[[str], Any], Any]:
    """(FastChat prompt name → the judge of its matches, the judge to close) for a ``--judge`` with a
    judge card (an export dir or a served URL); every setting that contradicts the card is an error."""
    from judgetrain import formats
    from judgetrain.judging import Judge
    from judgetrain.judging.card_target import load_card
    from judgetrain.judging.protocol import judge_from_card

    card = load_card(args.judge, api_key_env=args.api_key_env)
    if args.base_url:
        raise ValueError(f"--base-url: {args.judge} is judged as its judge card says; give a server's URL as --judge instead")
    pairwise = args.mode != "single"
    if card.kind == "reward":
        if not pairwise:
            raise ValueError(f"--mode single: {args.judge} is a reward judge (its judge card says kind reward): it gives each "
                             "answer a reward, not FastChat's 1-10 rating; use --mode pairwise-all or --mode pairwise-baseline")
    else:
        template = formats.get(card.template)
        protocol = "pairwise" if pairwise else "single"
        if template.family != "mtbench" or template.protocol != protocol:
            raise ValueError(f"--judge {args.judge}: its judge card fixes the template {card.template} ({template.family}, "
                             f"{template.protocol}), but --mode {args.mode} judges with FastChat's {protocol} MT-bench prompts "
                             f"(mtbench-{'pair' if pairwise else 'single'}-*); give a judge trained on one of them"
                             + ("" if template.protocol == protocol else
                                f", or use --mode {'single' if pairwise else 'pairwise-all'}"))
        if pairwise and not card.tie_policy.both_orders:
            raise ValueError(f"--judge {args.judge}: its judge card judges a pair in one order; MT-bench's pair files hold both orders")
    judge = judge_from_card(args.judge, card=card, batch_size=args.batch_size or args.parallel or 8, dtype=args.dtype,
                            max_new_tokens=args.max_new_tokens, api_key_env=args.api_key_env,
                            **({"cache": cache} if card.kind != "reward" else {}))
    if judge.kind == "reward":
        scored = _UpToTurn(judge)
        return (lambda prompt_name: scored), judge
    variants = {card.template: judge}

    def judge_for(prompt_name: str):
        name = f"mtbench-{prompt_name}"
        if name not in variants:
            # The template's FastChat variant (math, multi-turn) on the same backend, under the card's settings.
            variants[name] = Judge(name, judge.backend, **judge.card.judge_options())
        return variants[name]

    return judge_for, judge


def _judge(args: argparse.Namespace) -> int:
    from judgetrain_eval.mtbench.data import load_model_answers, load_reference_answers
    from judgetrain_eval.mtbench.judgment import judge_matches, make_matches, output_file_name

    data_dir, out_bench = _dirs(args)
    questions = _questions(args)
    from judgetrain_eval.mtbench.data import bench_dir

    answers = load_model_answers([out_bench / "model_answer", bench_dir(data_dir, args.bench_name) / "model_answer"])
    models = args.model_list or sorted(answers)
    references = load_reference_answers(data_dir, args.bench_name)
    matches = make_matches(args.mode, questions, answers, models, baseline=args.baseline, references=references)
    judge_name = args.judge_name or default_judge_name(args.judge)
    cache = None
    if not args.no_cache:
        from judgetrain.judging.cli import default_cache_path

        cache = args.cache or default_cache_path()
    from judgetrain.card import has_card
    from judgetrain.judging.card_target import is_served
    from judgetrain_eval.mtbench.judgment import DEFAULT_JUDGE_MAX_NEW_TOKENS

    output_file = out_bench / "model_judgment" / output_file_name(judge_name, args.mode)
    if is_served(args.judge) or has_card(args.judge):
        judge_for, card_judge = card_judge_for(args, cache)
        try:
            result = judge_matches(matches, answers, None, judge_name=judge_name, output_file=output_file, judge_for=judge_for)
        finally:
            card_judge.close()
    else:
        from judgetrain.judging.card_target import refuse_reward_model_dir

        refuse_reward_model_dir(args.judge.removeprefix("hf:").removeprefix("vllm:"), "FastChat MT-bench")
        backend = _make_backend(args.judge, args, args.parallel)
        try:
            result = judge_matches(matches, answers, backend, judge_name=judge_name, output_file=output_file,
                                   max_new_tokens=args.max_new_tokens or DEFAULT_JUDGE_MAX_NEW_TOKENS, cache=cache)
        finally:
            backend.close()
    print(f"{result.num_judged} matches judged, {result.num_skipped} already there, "
          f"{result.num_parse_failures} without a verdict -> {result.output_file}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from judgetrain_eval.mtbench import results as r
    from judgetrain_eval.mtbench.data import load_questions

    _, out_bench = _dirs(args)
    categories = {q["question_id"]: q.get("category", "unknown") for q in load_questions(args.data_dir, args.bench_name)}
    judgment_dir = out_bench / "model_judgment"
    baseline = args.baseline if args.mode == "pairwise-baseline" else None
    print(f"Mode: {args.mode}")
    if args.mode == "single":
        path = Path(args.input_file) if args.input_file else judgment_dir / f"{args.judge_name}_single.jsonl"
        print(f"Input file: {path}")
        table = r.single_table(r.read_judgments(path, "single"), categories, args.model_list)
        ranked = sorted(table, key=lambda m: -(table[m]["average"] or 0))
        print(r.format_table(["model", "turn 1", "turn 2", "average", "graded", "no rating"],
                             [[m, table[m]["turn_1"], table[m]["turn_2"], table[m]["average"], table[m]["num_graded"],
                               table[m]["num_unrated"]] for m in ranked]))
        value_max, title = 10.0, "MT-bench score per category"
    else:
        if args.from_single:
            path = Path(args.input_file) if args.input_file else judgment_dir / f"{args.judge_name}_single.jsonl"
            single = r.read_judgments(path, "single")
            models = args.model_list or sorted({row["model"] for row in single})
            rows = r.pairs_from_single(single, args.mode, models, baseline)
        else:
            path = Path(args.input_file) if args.input_file else judgment_dir / f"{args.judge_name}_pair.jsonl"
            rows = r.read_judgments(path, "pairwise")
        print(f"Input file: {path}" + (" (single grades compared, tie within 0.1)" if args.from_single else ""))
        table = r.pairwise_table(rows, categories, baseline=baseline, model_list=args.model_list)
        ranked = sorted(table, key=lambda m: -(table[m]["win_rate_adjusted"] or 0))
        print(r.format_table(["model", "win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted", "errors"],
                             [[m, table[m]["win"], table[m]["loss"], table[m]["tie"], table[m]["win_rate"],
                               table[m]["loss_rate"], table[m]["win_rate_adjusted"], table[m]["num_errors"]] for m in ranked]))
        value_max, title = 1.0, "MT-bench adjusted win rate per category"
    columns = r.category_columns(table)
    print("\nPer category" + (" (mean score over both turns)" if args.mode == "single" else " (adjusted win rate)"))
    print(r.format_table(["model", *columns], [[m, *[table[m]["categories"].get(c) for c in columns]] for m in ranked]))
    if not args.no_plot and table:
        plot = Path(args.plot) if args.plot else judgment_dir / f"{args.judge_name}_{args.mode}_radar.png"
        print(f"\nradar plot -> {r.radar_plot(table, plot, title=title, value_max=value_max)}")
    if args.json:
        _write_json(args.json, {"mode": args.mode, "input_file": str(path), "models": table})
    return 0


def _write_json(path: str, data: dict) -> None:
    from judgetrain.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False))


def _agreement(args: argparse.Namespace) -> int:
    from judgetrain_eval.mtbench.agreement import agreement_table, human_votes, judge_votes
    from judgetrain_eval.mtbench.results import format_table

    human = human_votes(args.human)
    judge = judge_votes(args.judgments, human, judge_name=args.judge_name)
    table = agreement_table(judge, human, policy=args.parse_failures)
    turns = list(next(iter(table.values())))
    rows = []
    for name, per_turn in table.items():
        for setting in ("s1", "s2"):
            label = f"{name} {setting.upper()} ({'with' if setting == 's1' else 'without'} ties)"
            rows.append([label, *[f"{_pct(e[setting])} ({e[setting + '_agree']}/{e[setting + '_total']})"
                                  for e in (per_turn[t] for t in turns)]])
    print(format_table(["agreement", *turns], rows))
    if args.json:
        _write_json(args.json, table)
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "mtbench_command", None)
    if command is None:
        raise ValueError(f"give an action: one of {', '.join(ACTIONS)} (see judgetrain mtbench --help)")
    for name in ("question_limit", "parallel", "batch_size"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return {"gen-answers": _gen_answers, "judge": _judge, "show": _show, "agreement": _agreement}[command](args)
