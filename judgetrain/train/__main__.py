"""``python -m judgetrain.train --config R.yaml [key=value ...]``: the entry point torchrun and
accelerate launch start on every process (``judgetrain train`` is the same in one process)."""

import argparse
import sys

from judgetrain.train.cli import configure, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m judgetrain.train", description="Train a judge from a recipe.")
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as err:
        # A user mistake: the message says what to change; every process prints it, rank-tagged.
        import os

        print(f"judgetrain train [rank {os.environ.get('RANK', '0')}]: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
