"""MT-bench end to end, in FastChat ``llm_judge``'s file layout and schemas.

``judgetrain mtbench gen-answers`` answers the questions with a model (both turns, the second seeing
the first answer), ``judge`` grades or compares the answers with FastChat's judge prompts,
``show`` prints FastChat ``show_result`` tables (plus per-category scores and a radar plot) and
``agreement`` measures any judge against the MT-bench expert votes (S1 with ties, S2 without).

Layout (FastChat's): ``<data dir>/<bench>/question.jsonl``, ``reference_answer/gpt-4.jsonl``,
``model_answer/<model id>.jsonl``, ``model_judgment/<judge>_single.jsonl`` / ``<judge>_pair.jsonl``.
Questions and references are read from ``--data-dir`` (default: the copies shipped in
``judgetrain/resources``); answers and judgments are written under ``--out-dir``.

Modules: :mod:`judgetrain_eval.mtbench.data` (files, schemas, FastChat constants), :mod:`judgetrain_eval.mtbench.answers`
(answer generation), :mod:`judgetrain_eval.mtbench.judgment` (judging), :mod:`judgetrain_eval.mtbench.results` (tables,
win rates, radar plot), :mod:`judgetrain_eval.mtbench.agreement` (agreement with humans), :mod:`judgetrain_eval.mtbench.cli`.
"""
