"""What an export dir holds besides its weights, tokenizer and card, for both judge kinds.

The generative export (:mod:`judgetrain.export`) and the reward export (:mod:`judgetrain.reward.export`)
both copy the evaluation results found in the run dir into the export, at the same relative path
(:func:`copy_eval_results`), so every ``evaluation[].path`` of the card names a file the export holds,
and both give the saved files the permissions of ordinary new files (:func:`readable_by_all`). Both
import this module; it imports neither.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

EVAL_RESULTS_GLOB = "**/results.json"
"""Evaluation results (``judgetrain eval``, ``judgetrain quickstart``) found under the run dir."""
MAX_RESULTS_DEPTH = 3


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None


def find_eval_results(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluation results under ``run_dir`` (``results.json`` files up to a few dirs deep), each as
    ``{"path": relative path, "benchmark": …, "metrics": …}``."""
    found = []
    for path in sorted(Path(run_dir).glob(EVAL_RESULTS_GLOB)):
        relative = path.relative_to(run_dir)
        if len(relative.parts) > MAX_RESULTS_DEPTH or any(p.startswith(".") for p in relative.parts):
            continue
        content = _read_json(path)
        found.append({"path": str(relative), "benchmark": content.get("benchmark"), "metrics": content.get("metrics", content)})
    return found


def copy_eval_results(run_dir: Path, export_dir: Path) -> list[dict[str, Any]]:
    """:func:`find_eval_results` of ``run_dir``, each file copied into ``export_dir`` at its relative
    path: the card's entries name files of the export, which travels without its run dir."""
    found = find_eval_results(run_dir)
    for entry in found:
        target = Path(export_dir) / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        # copyfile, not copy2: the copy gets an ordinary new file's permissions, not the run's.
        shutil.copyfile(Path(run_dir) / entry["path"], target)
    return found


def readable_by_all(directory: Path) -> None:
    """Give the saved files the permissions of ordinary new files: some writers create them 0600,
    which a server running as another user (a vLLM container) could not read."""
    mask = os.umask(0)
    os.umask(mask)
    for path in Path(directory).iterdir():
        if path.is_file():
            path.chmod(0o666 & ~mask)


__all__ = ["EVAL_RESULTS_GLOB", "MAX_RESULTS_DEPTH", "find_eval_results", "copy_eval_results", "readable_by_all"]
