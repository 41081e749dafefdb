"""Every recipe's launch lines, the accelerate config they name and the recipe's expected world size agree."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO_ROOT / "recipes").glob("*.yaml"))


def launch_lines(recipe: Path) -> list[list[str]]:
    """The torchrun / accelerate launch commands in a recipe's opening comment."""
    lines = []
    for line in recipe.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith(("torchrun ", "accelerate launch ")):
            lines.append(shlex.split(text.replace("$NODE_RANK", "0").replace("$MASTER_ADDR", "127.0.0.1")))
    return lines


def flag(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def launched_world_size(words: list[str]) -> int:
    if words[0] == "torchrun":
        return int(flag(words, "--nnodes") or 1) * int(flag(words, "--nproc_per_node") or 1)
    given = flag(words, "--num_processes")
    if given is not None:
        return int(given)
    config = yaml.safe_load((REPO_ROOT / flag(words, "--config_file")).read_text(encoding="utf-8"))
    return int(config["num_processes"])


def expected_world_size(recipe: Path, words: list[str]) -> int | None:
    for word in words:
        if word.startswith("parallel.expected_world_size="):
            return int(word.split("=", 1)[1])
    return (yaml.safe_load(recipe.read_text(encoding="utf-8")).get("parallel") or {}).get("expected_world_size")


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_launch_lines_start_the_world_size_the_recipe_expects(recipe):
    lines = [words for words in launch_lines(recipe) if "judgetrain.train" in words]
    expected = [(words, expected_world_size(recipe, words)) for words in lines]
    for words, size in expected:
        if size is None:
            continue
        assert launched_world_size(words) == size, f"{recipe.name}: {' '.join(words)} starts {launched_world_size(words)} processes, the recipe expects {size}"
        config = flag(words, "--config_file")
        if config is not None:
            assert (REPO_ROOT / config).is_file(), f"{recipe.name} names a missing accelerate config {config}"


def test_a_mismatched_launch_line_is_caught(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("# Launch:\n#   accelerate launch --config_file accelerate_configs/deepspeed_zero2.yaml -m judgetrain.train --config x\n"
                      "parallel: {expected_world_size: 4}\n", encoding="utf-8")
    (words,) = launch_lines(recipe)
    assert launched_world_size(words) == 8 and expected_world_size(recipe, words) == 4
