"""The ``judgetrain`` command line: one table of subcommands, each implemented where its work lives.

Each subcommand module exposes ``configure(parser)`` (adds its arguments) and ``run(args) -> int``.
Modules are imported only when their subcommand runs, so ``judgetrain formats`` does not pay for
importing torch. More subcommands come from plugins (entry-point group ``judgetrain.commands``, see
:mod:`judgetrain.plugins`): judgetrain's benchmarks package brings ``eval`` and ``mtbench`` that way.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from judgetrain import plugins

# name -> (module implementing it, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "formats": ("judgetrain.formats.cli", "list the judge formats and print a rendered example"),
    "prep": ("judgetrain.data.cli", "read a judge dataset into canonical samples, augment and tokenize it"),
    "train": ("judgetrain.train.cli", "train a judge from a recipe (one process; use torchrun for more)"),
    "judge": ("judgetrain.judging.cli", "judge samples with a model or an API and write judgments"),
    "rerank": ("judgetrain.judging.rerank_cli", "best-of-n: rank each prompt's candidate answers with a judge, keep the best"),
    "label": ("judgetrain.judging.label_cli", "ask a teacher model for judgments to build a training set"),
    "export": ("judgetrain.export", "export a checkpoint as a judge: merged safetensors + judge card"),
    "serve": ("judgetrain.serve", "serve a judge over an OpenAI-compatible HTTP API (CPU / development)"),
    "quickstart": ("judgetrain.quickstart", "the whole day on the embedded SmolLM2: prep, train, eval, export, serve"),
    "browse": ("judgetrain.browse", "browse judgments and try a judge in the web browser"),
}


def _help_lines(chosen: str | None) -> dict[str, str]:
    """Every subcommand's one-line help: the table's, then each plugin module's ``HELP``. A plugin's
    module is imported for it only when its line can be printed (no subcommand chosen, or that one),
    so ``judgetrain train`` does not pay for importing the plugins."""
    lines = {name: help_text for name, (_, help_text) in SUBCOMMANDS.items()}
    for name in plugins.names(plugins.COMMANDS):
        if name in lines:  # a plugin cannot replace a built-in subcommand
            continue
        where = f"(from {plugins.entry_point(plugins.COMMANDS, name).value})"
        lines[name] = getattr(plugins.load(plugins.COMMANDS, name), "HELP", where) if chosen in (None, name) else where
    return lines


def _find_module(name: str):
    """The module of a subcommand, or None when it is not built yet."""
    if name not in SUBCOMMANDS:
        return plugins.load(plugins.COMMANDS, name)
    module_name = SUBCOMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        # Only a missing module of the subcommand itself means "not built"; a missing third-party
        # dependency inside it is a real error the user must see.
        if err.name is not None and module_name.startswith(err.name):
            return None
        raise


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="judgetrain", description="Train, evaluate and ship LLM judges.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported; the others get a bare parser for --help.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in _help_lines(chosen).items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = _find_module(name)
            if module is not None:
                module.configure(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = _find_module(args.command)
    if module is None:
        print(f"judgetrain {args.command}: not built yet in this version of judgetrain.", file=sys.stderr)
        return 2
    try:
        return int(module.run(args) or 0)
    except ValueError as err:
        # User mistakes are ValueErrors whose message says what to do; no traceback for those.
        print(f"judgetrain {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
