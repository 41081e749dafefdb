"""Best-of-n with a judge: sample N answers from one model and keep the one the judge picks.

    python examples/best_of_n.py --judge runs/quickstart/judge --question "Give three tips for sleeping well." -n 4
    python examples/best_of_n.py --judge http://127.0.0.1:8000 --generator embedded:smollm2-135m -n 4

The generator samples N answers (temperature > 0) through the transformers backend; the judge is
built from its card (an export dir, or the URL of `judgetrain serve` / `vllm serve` with --card) and
reranks them: a pairwise judge plays every pair in both orders, a grading judge grades each answer.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", required=True, help="an export dir or the http:// URL of a judge server")
    parser.add_argument("--card", default=None, help="the judge card (export dir or judge_card.json) when the server has none (vllm serve)")
    parser.add_argument("--generator", default="embedded:smollm2-135m", help="the model that writes the candidate answers")
    parser.add_argument("--question", default="Give three tips for sleeping well.")
    parser.add_argument("-n", type=int, default=4, help="candidate answers to sample")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.n < 2:
        raise SystemExit("-n must be at least 2: best-of-one needs no judge")

    import judgetrain
    from judgetrain.judging.backends.base import Decoding, Request
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    generator = TransformersBackend(args.generator)
    request = Request(messages=({"role": "user", "content": args.question},),
                      decoding=Decoding(max_new_tokens=args.max_new_tokens, temperature=args.temperature, n=args.n, seed=args.seed))
    candidates = [text.strip() for text in generator.generate([request])[0].texts]

    judge = judgetrain.Judge.from_card(args.judge, card=args.card, progress=True)
    result = judge.rerank(args.question, candidates)
    print(f"question: {args.question}\nmethod: {result.method}; judge calls without a verdict: {result.num_unread}\n")
    for rank, index in enumerate(result.ranking, start=1):
        marker = "  <- kept" if index == result.best_index else ""
        print(f"#{rank} candidate {index} (points {result.points[index]}){marker}\n{candidates[index]}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
