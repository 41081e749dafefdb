"""Write a scored run: ``results.json``, ``judgments.jsonl``, ``report.md`` and PNG plots; compare runs.

Every file is written to a temporary name in the run directory and renamed into place, so a reader
never sees half a file and a crashed run never leaves one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from judgetrain_eval.runner import EvalRun, versions
from judgetrain.atomic import atomic_path, write_text_atomic
from judgetrain.evaluation.scoring import definition

RESULTS_FILE = "results.json"
JUDGMENTS_FILE = "judgments.jsonl"
REPORT_FILE = "report.md"
CONFUSION_PLOT = "confusion_matrix.png"
GROUPS_PLOT = "groups.png"

POLICY_TEXT = {
    "wrong": "parse failures are kept and count as wrong / inconsistent verdicts (policy `wrong`)",
    "exclude": "items with a parse failure are left out of each metric the failure touches (policy `exclude`)",
}


def input_truncation_counts(rows: Sequence[Any]) -> dict[str, int]:
    """How many items, and judge calls, had their input cut to fit the judge's token budget
    (``input_truncated`` in a call's meta; :mod:`judgetrain.judging.truncation`)."""
    cut_calls = [[bool(call.get("meta", {}).get("input_truncated")) for call in row.judgments] for row in rows]
    return {"num_items": sum(1 for calls in cut_calls if any(calls)), "num_calls": sum(sum(calls) for calls in cut_calls)}


def results_document(run: EvalRun) -> dict[str, Any]:
    """The content of ``results.json``: every metric with its interval, the policy, versions, config."""
    keys = set(run.results["metrics"]) | {k for g in run.results["groups"].values() for k in g}
    keys |= set(run.results.get("length", {}).get("metrics", {}))
    return {
        "benchmark": run.benchmark.name,
        "benchmark_version": run.benchmark.version,
        "description": run.benchmark.description,
        "anchor": run.benchmark.anchor,
        "kind": run.benchmark.kind,
        "parse_failure_policy": run.config["parse_failure_policy"],
        "input_truncated": input_truncation_counts(run.rows),
        **run.results,
        "definitions": {k: definition(k) for k in sorted(keys)},
        "config": run.config,
        "versions": versions(),
        "seconds": round(run.seconds, 3),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _interval(estimate: dict[str, Any]) -> str:
    if estimate.get("low") is None:
        return ""
    return f"[{estimate['low']:.3f}, {estimate['high']:.3f}]"


def render_markdown(run: EvalRun) -> str:
    """``report.md``: headline table, per-group table, confusion matrices, bias section, failures."""
    res, cfg, bench = run.results, run.config, run.benchmark
    lines = [f"# {bench.name} (version {bench.version})", "", bench.description, "", f"Comparable to: {bench.anchor}", ""]
    source = f"judge `{cfg.get('judge')}` with template `{cfg.get('format')}`" if cfg.get("mode") == "judge" else \
        f"predictions `{cfg.get('predictions')}`" + (f" and swapped `{cfg['predictions_swapped']}`" if cfg.get("predictions_swapped") else "")
    lines += [f"- Verdicts: {source}", f"- Data: `{cfg.get('data')}`, {cfg.get('num_items')} items"
              + (f" (limited to {cfg['limit']})" if cfg.get("limit") else "")
              + ("; {} bad rows skipped (--on-bad-row skip; {})".format(cfg["data_read"]["rows_skipped"], ", ".join(
                  f"{reason}: {entry['count']}" for reason, entry in cfg["data_read"]["skipped"].items()))
                 if cfg.get("data_read", {}).get("rows_skipped") else ""),
              f"- Parse failures: {POLICY_TEXT[cfg['parse_failure_policy']]}",
              "- Inputs cut to fit the judge's token budget (question first; `input_truncated` in judgments.jsonl): "
              "{num_items} items, {num_calls} judge calls".format(**input_truncation_counts(run.rows)),
              f"- Intervals: 95% percentile bootstrap over items, {cfg['bootstrap']['num_resamples']} resamples, seed {cfg['bootstrap']['seed']}",
              "- Rates are fractions in [0, 1]; the overall row is the micro average over items.", ""]
    if "positional_agreement" in res["metrics"]:
        lines.append("- positional_agreement counts failures as LLMBar does: two failed orders agree, one failed order "
                     "does not" if cfg["parse_failure_policy"] == "wrong" else
                     "- positional_agreement leaves out items with a failed order (policy `exclude`)")
        lines.append("")
    lines += ["## Metrics", "", "| metric | value | 95% interval | items |", "|---|---|---|---|"]
    for key, est in res["metrics"].items():
        if key == "num_items":
            continue
        lines.append(f"| {key} | {_fmt(est['value'])} | {_interval(est)} | {est['num_items']} |")
    lines.append(f"| num_items | {int(res['metrics']['num_items']['value'])} | | |")
    lines.append("")
    if res["groups"]:
        keys = [k for k in res["metrics"] if k != "num_items"]
        lines += ["## Per group", "", "| group | items | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
        for group, metrics in res["groups"].items():
            items = int(metrics["num_items"]["value"])
            cells = [_fmt(metrics.get(k, {}).get("value")) for k in keys]
            lines.append(f"| {group} | {items} | " + " | ".join(cells) + " |")
        overall = [_fmt(res["metrics"][k]["value"]) for k in keys]
        lines.append(f"| **overall** | {int(res['metrics']['num_items']['value'])} | " + " | ".join(overall) + " |")
        lines.append("")
    lines += _parser_modes_section(res, cfg.get("mode"))
    for name, title in (("confusion_matrix", "original order"), ("confusion_matrix_swapped", "swapped order, mapped back")):
        if name in res:
            matrix = res[name]
            columns = list(next(iter(matrix.values())))
            lines += [f"## Confusion matrix ({title})", "", "rows: gold label; columns: the judge's verdict", "",
                      "| gold \\ verdict | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
            lines += [f"| {gold} | " + " | ".join(str(row[c]) for c in columns) + " |" for gold, row in matrix.items()]
            lines.append("")
    if bench.kind == "pairwise":
        lines += ["## Bias", ""]
        for key in ("consistency", "prefer_first_rate", "prefer_second_rate", "position_bias"):
            if key in res["metrics"]:
                est = res["metrics"][key]
                lines.append(f"- {key}: {_fmt(est['value'])} {_interval(est)} — {definition(key)}")
        if "consistency" not in res["metrics"]:
            lines.append("- position bias: not measured (only one order was judged; give --predictions-swapped)")
        lines.append("")
        lines += _length_section(res)
    if "win_rates" in res:
        lines += ["## Win rates from the judge's votes (FastChat show_result)", "",
                  "| model | win | loss | tie | win rate | adjusted win rate |", "|---|---|---|---|---|---|"]
        for model, r in sorted(res["win_rates"].items(), key=lambda kv: -kv[1]["win_rate_adjusted"]):
            lines.append(f"| {model} | {r['win']} | {r['loss']} | {r['tie']} | {r['win_rate']:.3f} | {r['win_rate_adjusted']:.3f} |")
        lines.append("")
    failures = [(row.id, reason, text) for row in run.rows for reason, text in zip(row.parse_failures, row.raw_texts) if reason]
    lines += ["## Parse failures", "", f"{len(failures)} judge call(s) did not parse."]
    for item_id, reason, text in failures[:5]:
        snippet = text.replace("\n", " ")[:160]
        lines.append(f"- `{item_id}`: {reason} — `{snippet}`")
    lines.append("")
    plots = [p for p in (CONFUSION_PLOT, GROUPS_PLOT) if p in run.config.get("_plots", [])]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    lines += ["## Definitions", ""]
    for key in [*res["metrics"], *res.get("length", {}).get("metrics", {})]:
        lines.append(f"- `{key}`: {definition(key)}")
    return "\n".join(lines) + "\n"


def _length_section(res: dict[str, Any]) -> list[str]:
    """The length-controlled metrics: whether the judge knows something answer length does not."""
    length = res.get("length")
    if not length:
        return []
    lines = ["## Length", "",
             f"Answer length in {length['unit']} of the answer text (all turns together: no tokenizer, so a predictions "
             f"file and a model judge are measured alike), original-order verdicts, {length['num_items']} items. The rule "
             "\"the longer answer wins\" scores exactly 0.5 on length_balanced_accuracy: above it the judge knows something "
             "length does not. length_controlled_agreement is the agreement with the label read at equal lengths from a "
             "logistic fit, as AlpacaEval's length-controlled win rate (definitions below).", "",
             "| metric | value | 95% interval | items |", "|---|---|---|---|"]
    for key, est in length["metrics"].items():
        lines.append(f"| {key} | {_fmt(est['value'])} | {_interval(est)} | {est['num_items']} |")
    return lines + [""]


def _parser_modes_section(res: dict[str, Any], mode: str | None) -> list[str]:
    """The strict and the lenient reading of the same raw outputs, side by side."""
    modes = res.get("parser_modes") or {}
    if not modes:
        why = "the verdicts came from a predictions file" if mode == "predictions" else "the judge's outputs are not text a format parses"
        return ["## Strict and lenient parsing", "", f"Not measured: {why}.", ""]
    names = list(modes)
    keys = [k for k in next(iter(modes.values()))["metrics"] if k != "num_items"]
    lines = ["## Strict and lenient parsing", "",
             "The same raw outputs read by the format's strict parser and by its lenient one (no second generation).", "",
             "| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in keys:
        cells = [f"{_fmt(modes[n]['metrics'].get(key, {}).get('value'))} {_interval(modes[n]['metrics'].get(key, {}))}".strip()
                 for n in names]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines + [""]


def _primary_metric(run: EvalRun) -> str | None:
    for key in run.benchmark.metrics:
        if key in run.results["metrics"]:
            return key
    return None


def write_plots(run: EvalRun, out_dir: Path) -> list[str]:
    """The confusion matrix (pairwise) and the per-group bars of the benchmark's first metric, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    matrix = run.results.get("confusion_matrix")
    if matrix:
        golds, columns = list(matrix), list(next(iter(matrix.values())))
        values = [[matrix[g][c] for c in columns] for g in golds]
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.imshow(values, cmap="Blues")
        ax.set_xticks(range(len(columns)), labels=columns, rotation=30)
        ax.set_yticks(range(len(golds)), labels=golds)
        ax.set_xlabel("judge verdict")
        ax.set_ylabel("gold label")
        ax.set_title(f"{run.benchmark.name}: confusion matrix")
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center")
        fig.tight_layout()
        with atomic_path(out_dir / CONFUSION_PLOT, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        written.append(CONFUSION_PLOT)
    key = _primary_metric(run)
    groups = {g: v[key] for g, v in run.results["groups"].items() if key and key in v and v[key]["value"] is not None}
    if groups:
        names = list(groups)
        heights = [groups[g]["value"] for g in names]
        lows = [h - (groups[g]["low"] if groups[g]["low"] is not None else h) for g, h in zip(names, heights)]
        highs = [(groups[g]["high"] if groups[g]["high"] is not None else h) - h for g, h in zip(names, heights)]
        fig, ax = plt.subplots(figsize=(max(5, len(names) * 0.9), 4))
        ax.bar(range(len(names)), heights, yerr=[lows, highs], capsize=3, color="tab:blue")
        ax.set_xticks(range(len(names)), labels=names, rotation=30, ha="right")
        ax.set_ylabel(key)
        ax.set_title(f"{run.benchmark.name}: {key} per group (95% interval)")
        fig.tight_layout()
        with atomic_path(out_dir / GROUPS_PLOT, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        written.append(GROUPS_PLOT)
    return written


def write_run(run: EvalRun, out_dir: str | Path, *, plots: bool = True) -> Path:
    """Write the run directory and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run.config["_plots"] = write_plots(run, out) if plots else []
    write_text_atomic(out / JUDGMENTS_FILE, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in run.rows))
    write_text_atomic(out / REPORT_FILE, render_markdown(run))
    config = dict(run.config)
    config["plots"] = config.pop("_plots")
    document = results_document(run)
    document["config"] = config
    write_text_atomic(out / RESULTS_FILE, json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    return out


def compare_runs(run_dirs: Sequence[str | Path]) -> str:
    """The headline metrics of several runs side by side (a markdown table), one column per run."""
    docs = []
    for run_dir in run_dirs:
        path = Path(run_dir) / RESULTS_FILE
        if not path.is_file():
            raise ValueError(f"{run_dir}: no {RESULTS_FILE}; is this a `judgetrain eval --out` directory?")
        docs.append(json.loads(path.read_text(encoding="utf-8")))
    keys: list[str] = []
    for doc in docs:
        keys += [k for k in doc["metrics"] if k not in keys]
    header = ["metric"] + [f"{Path(d).name} ({doc['benchmark']})" for d, doc in zip(run_dirs, docs)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for key in keys:
        cells = []
        for doc in docs:
            est = doc["metrics"].get(key)
            if est is None:
                cells.append("")
            elif key == "num_items":
                cells.append(str(int(est["value"])))
            else:
                cells.append(_fmt(est["value"]) + (f" {_interval(est)}" if est.get("low") is not None else ""))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("| parse_failure_policy | " + " | ".join(doc["parse_failure_policy"] for doc in docs) + " |")
    return "\n".join(lines) + "\n"
