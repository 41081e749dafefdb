"""``judgetrain formats``: list the judge formats, or show one rendered on an example.

The list ends with the templates of judge kinds that write no judgment (the reward judge's
``reward-chat-v1``); ``--show`` on one of those explains what it scores and how its verdict is read,
with the example's scored conversations, since it has no prompt or parser to show.
"""

from __future__ import annotations

import argparse
import json

from judgetrain import formats
from judgetrain.types import Answer, JudgeSample, Label


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", metavar="NAME", help="print NAME rendered on an example sample, and its parse of the target")


def example_sample(fmt: formats.JudgeFormat) -> JudgeSample:
    """A small labelled sample fitting ``fmt``'s protocol, reference and turn layout."""
    multi = fmt.multi_turn
    question = ("What is 12 * 7?", "And what is that divided by 4?") if multi else "What is 12 * 7?"
    answer_a = ("12 * 7 = 84.", "84 / 4 = 21.") if multi else "12 * 7 = 84."
    answer_b = ("12 * 7 = 74.", "74 / 4 = 18.5.") if multi else "12 * 7 = 74."
    reference = ("84", "21") if multi else "84"
    if fmt.protocol == "pairwise":
        answers = (Answer(answer_a, "model-a"), Answer(answer_b, "model-b"))
        scale = fmt.score_scale
        label = Label(winner="A", scores=(scale[1], scale[0]) if scale else None, scale=scale)
    else:
        answers = (Answer(answer_a, "model-a"),)
        scale = fmt.score_scale or (1.0, 10.0)
        label = Label(scores=(scale[1],), scale=scale)
    return JudgeSample(
        id="example-1",
        source="example",
        question=question,
        answers=answers,
        reference=reference if fmt.with_reference else None,
        rubric="Is the arithmetic correct?" if fmt.family == "prometheus" else None,
        category="math",
        labels={"human": label},
    )


def show_kind_template(template: formats.KindTemplate) -> None:
    """Print what a kind's template scores, on the example pair, and how its verdict is read."""
    from judgetrain.reward.data import reward_messages

    print(f"# {template.name} ({template.kind} judge kind, {', '.join(template.protocols)}; no prompt, no parser)\n")
    print(f"A {template.kind} judge writes no judgment. What it scores: {template.description}.")
    print("The order of two answers cannot change its verdict (consistency 1 by construction); nothing is generated or parsed.\n")
    sample = JudgeSample(id="example-1", source="example", question="What is 12 * 7?",
                         answers=(Answer("12 * 7 = 84.", "model-a"), Answer("12 * 7 = 74.", "model-b")))
    for index, name in enumerate(("A", "B")):
        print(f"--- scored conversation of answer {name} (its reward r_{name}) ---")
        for message in reward_messages(sample, index):
            print(f"[{message['role']}] {message['content']}")
        print()
    print("--- verdict ---")
    print("A if r_A - r_B > tie_margin, B if r_A - r_B < -tie_margin, else tie (tie_margin from the judge card);")
    print("one answer alone: its reward is its grade.\n")
    print("Judge with a reward export as its card says: `judgetrain judge --model EXPORT_DIR --input SAMPLES.jsonl "
          "--out JUDGMENTS.jsonl` (no --format), or judgetrain.Judge.from_card(EXPORT_DIR).")


def run(args: argparse.Namespace) -> int:
    if args.show and formats.kind_template(args.show) is not None:
        show_kind_template(formats.kind_template(args.show))
        return 0
    if args.show:
        fmt = formats.get(args.show)
        sample = example_sample(fmt)
        messages = fmt.render(sample)
        print(f"# {fmt.name} ({fmt.family}, {fmt.protocol}{', reference' if fmt.with_reference else ''}"
              f"{', multi-turn' if fmt.multi_turn else ''})\n")
        for message in messages:
            print(f"--- {message['role']} ---\n{message['content']}\n")
        if messages[-1]["role"] == "assistant":
            parsed = fmt.parse(messages[-1]["content"])
            print("--- parse(target) ---")
            print(json.dumps(parsed.to_dict(), indent=2))
        return 0
    rows = [(f.name, f.family, f.protocol, "yes" if f.with_reference else "", "yes" if f.multi_turn else "", f.description)
            for f in (formats.get(n) for n in formats.names())]
    header = ("template", "family", "protocol", "reference", "multi-turn", "description")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[5])
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[5])
    print(f"\n{len(rows)} templates in {len(formats.FAMILIES)} families. `judgetrain formats --show NAME` renders one.")
    kind_rows = [(t.name, t.kind, ", ".join(t.protocols), t.description) for t in formats.KIND_TEMPLATES.values()]
    kind_header = ("template", "kind", "protocols", "what it scores (no prompt, no parser)")
    kind_widths = [max(len(r[i]) for r in kind_rows + [kind_header]) for i in range(3)]
    print("\nJudge kinds that score instead of writing a judgment:")
    for row in [kind_header, *kind_rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, kind_widths)) + "  " + row[3])
    print("`judgetrain formats --show NAME` explains one.")
    return 0
