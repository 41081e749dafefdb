"""``judgetrain train``: run a recipe in this process.

    judgetrain train --config recipes/smollm2-135m-lora-cpu.yaml [key=value ...]
    judgetrain train --list-keys                      # every config key, its default and meaning
    judgetrain train --config R.yaml --print-config   # the resolved config, without training

Several processes: ``torchrun --nproc_per_node N -m judgetrain.train --config R.yaml [key=value ...]``
or ``accelerate launch --config_file accelerate_configs/X.yaml -m judgetrain.train --config R.yaml``.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a recipe YAML (recipes/*.yaml); without it the defaults are used")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides with dotted keys, applied in order, e.g. optim.lr=1e-4 optim.max_steps=20")
    parser.add_argument("--list-keys", action="store_true", help="print every config key with its default and meaning")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")


def run(args: argparse.Namespace) -> int:
    from judgetrain.train.config import config_yaml, describe_keys, load_config

    if args.list_keys:
        print(describe_keys())
        return 0
    config = load_config(args.config, args.overrides)
    if args.print_config:
        print(config_yaml(config), end="")
        return 0
    from judgetrain.train.trainer import train

    result = train(config)
    if result.final_dir is not None:
        from accelerate import PartialState

        if PartialState().is_main_process:
            print(f"trained {result.global_step} steps (mean loss {result.train_loss:.4f}, {result.distributed_type}); "
                  f"model saved to {result.final_dir}")
    return 0


__all__ = ["configure", "run"]
