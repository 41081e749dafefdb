"""``judgetrain formats``: list the judge formats, or show one rendered on an example."""

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


def run(args: argparse.Namespace) -> int:
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
    return 0
