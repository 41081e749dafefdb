"""AlpacaEval's own pairwise annotator (``alpaca_eval.annotators.PairwiseAnnotator``) with the config in
examples/alpaca_eval/judgetrain_annotator, answered by a tiny generative judge served by
`judgetrain serve` on 127.0.0.1.

The prompt AlpacaEval sends is the judge's own template (judgetrain's mtbench-pair-v2 messages, byte
for byte), the raw completion it stores is the text the served judge writes for the same pair when
judgetrain asks it, and its preference is that judge's verdict (1 for A, 2 for B, 1.5 for a tie;
none when the judge wrote no verdict token: a barely trained judge mostly does not).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import TINY_JUDGE_TEMPLATE as GENERATIVE_TEMPLATE

CONFIG_DIR = Path(__file__).resolve().parents[2] / "examples" / "alpaca_eval" / "judgetrain_annotator"
PAIRS = [
    {"instruction": "Name a prime number.", "output_1": "7 is a prime: its only divisors are 1 and 7.", "output_2": "9"},
    {"instruction": "What is the capital of France?", "output_1": "Lyon.", "output_2": "Paris, on the Seine."},
    {"instruction": "Give one tip for sleeping well.", "output_1": "Keep the same bedtime every night.", "output_2": "Drink coffee."},
]
PREFERENCE_OF_WINNER = {"A": 1.0, "B": 2.0, "tie": 1.5}


@pytest.fixture(scope="module")
def served_judge(tiny_generative_export):
    from judgetrain.serve import start_server

    export_dir = tiny_generative_export
    server, _ = start_server(str(export_dir), "127.0.0.1", 0, batch_size=8)
    yield export_dir, server.url
    server.shutdown()
    server.server_close()


def _annotator_dir(tmp_path: Path, max_tokens: int) -> Path:
    """The example annotator dir, copied (AlpacaEval writes its annotations beside the config) with the
    generation budget set to the judge card's, as the config's comment asks."""
    copy = tmp_path / "judgetrain_annotator"
    shutil.copytree(CONFIG_DIR, copy)
    config = yaml.safe_load((copy / "configs.yaml").read_text(encoding="utf-8"))
    config["judgetrain_annotator"]["completions_kwargs"]["max_tokens"] = max_tokens
    (copy / "configs.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return copy


def test_alpaca_evals_annotator_reads_the_served_judges_own_verdicts(served_judge, tmp_path, monkeypatch):
    alpaca_annotators = pytest.importorskip("alpaca_eval.annotators", reason="alpaca_eval not installed (the dev extra)")
    from alpaca_eval import utils as alpaca_utils

    import judgetrain
    from judgetrain.card import read_card
    from judgetrain.client import pair_sample

    export_dir, url = served_judge
    card = read_card(export_dir)
    assert card.template == GENERATIVE_TEMPLATE
    # AlpacaEval's OpenAI client finds the server from the OpenAI client's own settings.
    monkeypatch.setenv("OPENAI_BASE_URL", f"{url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "unused-by-an-open-judgetrain-serve")
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)

    config_dir = _annotator_dir(tmp_path, card.decoding.max_new_tokens)
    annotator = alpaca_annotators.PairwiseAnnotator(annotators_config=str(config_dir), caching_path=str(tmp_path / "annotations.json"))
    annotated = annotator.annotate_pairs(PAIRS)

    judge = judgetrain.Judge.from_card(url, both_orders=False)
    judgments = judge.judge([pair_sample(p["instruction"], p["output_1"], p["output_2"]) for p in PAIRS])
    judge.backend.close()
    assert all(j.error is None for j in judgments), [j.error for j in judgments]
    expected = [PREFERENCE_OF_WINNER[j.winner] if j.verdict is not None else None for j in judgments]
    assert [a["instruction"] for a in annotated] == [p["instruction"] for p in PAIRS]
    assert [_preference(a["preference"]) for a in annotated] == expected

    # The annotator's own steps, one by one (its returned rows keep no raw text for an output it could
    # not read): its prompts are the judge's messages, byte for byte; the completions it gets are what
    # the served judge writes when judgetrain asks; its parser reads them as the judge's verdicts.
    single = annotator.annotators["judgetrain_annotator"]
    prompts, _ = alpaca_utils.make_prompts(pd.DataFrame(PAIRS), single.prompt_template)
    assert [alpaca_utils.prompt_to_chatml(p) for p in prompts] == [[dict(m) for m in j.prompt_messages] for j in judgments]
    completions = single.fn_completions(prompts=prompts, **single.completions_kwargs)["completions"]
    assert completions == [j.raw_text or " " for j in judgments]  # AlpacaEval keeps an empty output as " "
    parsed, _ = single._parse_completions(completions)
    assert [_preference(p) for p in parsed] == expected


def _preference(value):
    """AlpacaEval's preference as a number, None for no annotation (it writes None or NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def test_the_parser_maps_each_verdict_token_and_refuses_the_rest():
    completion_parsers = pytest.importorskip("alpaca_eval.completion_parsers", reason="alpaca_eval not installed (the dev extra)")
    from judgetrain import formats

    config = yaml.safe_load((CONFIG_DIR / "configs.yaml").read_text(encoding="utf-8"))["judgetrain_annotator"]
    options = config["completion_parser_kwargs"]["outputs_to_match"]
    fmt = formats.get(GENERATIVE_TEMPLATE)
    for text in ("A is more accurate. [[A]]", "Assistant B answers it. [[B]]", "Both are equal. [[C]]"):
        (preference,) = getattr(completion_parsers, config["fn_completion_parser"])(text, outputs_to_match=dict(options))
        assert preference == PREFERENCE_OF_WINNER[fmt.parse(text).winner]
    # No verdict token, or two: no annotation (the judge's own strict parser reads neither).
    for text in ("I cannot tell.", "[[A]] or maybe [[B]]"):
        assert len(getattr(completion_parsers, config["fn_completion_parser"])(text, outputs_to_match=dict(options))) != 1
        assert fmt.parse(text).__class__.__name__ == "ParseFailure"
