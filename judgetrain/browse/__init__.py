"""``judgetrain browse``: browse judgments and try a judge in the web browser.

    judgetrain browse RUN_DIR|MTBENCH_DIR ... [--host 127.0.0.1] [--port 8765]

Pages: the runs given; the judgments of a run (filter by benchmark, group, verdict and agreement
with the gold label; open an item to see its question, both answers side by side, every label and
the judge's verdict, raw output and prompt in each order); a comparison of two runs on the same
benchmark (the items where the judges differ first); MT-bench (a question, two models, each turn's
answers with that turn's verdicts and grades from every judge); and a playground (type a question
and one or two answers, judge them in both orders with an export dir or a served judge, as its
judge card says and as ``judgetrain.Judge.from_card`` would, with any OpenAI-compatible model, or
with ``tiny``).

A run dir is self-contained: its judgments.jsonl rows carry each item's question, answers and
reference, so it can be browsed on a machine without the benchmark data.

The pages are plain server-rendered HTML from the standard library's HTTP server, with every
string from a file or a form escaped, and no script. The server binds 127.0.0.1 unless ``--host``
says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    parser.add_argument("dirs", nargs="*", metavar="DIR",
                        help="evaluation run dirs (`judgetrain eval --out`) and MT-bench dirs (FastChat layout)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 picks a free one)")


def run(args: argparse.Namespace) -> int:
    from judgetrain.browse.server import start_server
    from judgetrain.browse.store import load_dirs
    from judgetrain.serve import serve_until_interrupted

    runs, mtbench = load_dirs(args.dirs)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"judgetrain browse: listening on {args.host}: anyone who can reach it can read the judgments "
              "and run the playground's judges", file=sys.stderr)
    server, thread = start_server(runs, mtbench, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"judgetrain browse: {len(runs)} run(s), {len(mtbench)} MT-bench dir(s) on http://{host}:{port}/ (Ctrl-C stops)",
          flush=True)
    serve_until_interrupted(server, thread)
    return 0
