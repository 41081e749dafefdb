"""``judgetrain browse``: browse judgments and try a judge in the web browser.

    judgetrain browse RUN_DIR|MTBENCH_DIR ... [--host 127.0.0.1] [--port 8765]
                      [--allow-base-url URL ...] [--api-key-env NAME]

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
says otherwise, answers only to its own host names, and takes a playground form only from its own
page (a per-process token in the form; another site's or a ``null`` Origin is refused).

Where the playground may send a request is fixed here, never by the form: a served judge or an
OpenAI-compatible model is reached only at a ``--allow-base-url`` (repeatable), and only with
``--api-key-env NAME`` is a key sent to one (``$NAME``, as a Bearer token); without it no key is
sent at all, whatever the environment holds:

    judgetrain browse runs/ --allow-base-url http://127.0.0.1:8000/v1
    judgetrain browse runs/ --allow-base-url https://api.openai.com/v1 --api-key-env OPENAI_API_KEY
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
    parser.add_argument("--allow-base-url", action="append", default=[], metavar="URL",
                        help="a base URL the playground may judge with (a served judge or an OpenAI-compatible API, "
                             "e.g. http://127.0.0.1:8000/v1); repeat for more; none: only tiny and export dirs")
    parser.add_argument("--api-key-env", default=None, metavar="NAME",
                        help="environment variable whose key is sent (Bearer) to the allowed base URLs by an "
                             "OpenAI-compatible model; without it no key is sent")


def run(args: argparse.Namespace) -> int:
    from judgetrain.browse.playground import checked_api_key_env, checked_base_url
    from judgetrain.browse.server import start_server
    from judgetrain.browse.store import load_dirs
    from judgetrain.serve import serve_until_interrupted

    allowed_base_urls = [checked_base_url(u) for u in args.allow_base_url]
    api_key_env = checked_api_key_env(args.api_key_env) if args.api_key_env is not None else None
    if api_key_env and not allowed_base_urls:
        print(f"judgetrain browse: --api-key-env {api_key_env} has no effect without --allow-base-url "
              "(the key is sent only to an allowed base URL)", file=sys.stderr)
    runs, mtbench = load_dirs(args.dirs)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"judgetrain browse: listening on {args.host}: anyone who can reach it can read the judgments "
              "and run the playground's judges", file=sys.stderr)
    server, thread = start_server(runs, mtbench, args.host, args.port, allowed_base_urls=allowed_base_urls,
                                  api_key_env=api_key_env)
    host, port = server.server_address[:2]
    if allowed_base_urls:
        # The variable's name only: its value is never printed or logged.
        sent = f"with the key in ${api_key_env}" if api_key_env else "with no key"
        print(f"judgetrain browse: the playground may call {', '.join(allowed_base_urls)} ({sent})", file=sys.stderr)
    print(f"judgetrain browse: {len(runs)} run(s), {len(mtbench)} MT-bench dir(s) on http://{host}:{port}/ (Ctrl-C stops)",
          flush=True)
    serve_until_interrupted(server, thread)
    return 0
