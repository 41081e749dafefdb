"""Server-rendered HTML pages of the browser.

Every string that comes from a file or a form (questions, answers, critiques, model names, ids) goes
through :func:`esc` (``html.escape`` with quotes) before it reaches the page, and every link is built
with ``urlencode``; no page runs script, so an answer holding ``<script>`` is shown as text.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence
from urllib.parse import urlencode

from judgetrain.browse.store import AGREEMENTS, MTBenchDir, Run, agreement, outcome
from judgetrain.card import JudgeCard
from judgetrain.types import Judgment

PAGE_SIZE = 100
"""Items listed per page of the judgments view."""
LENGTH_SHOWN = ("length_balanced_accuracy", "length_controlled_agreement", "judge_picked_longer_rate")
"""The length-controlled metrics the run list shows (the scorer's names; the longer-answer rule scores
0.5 on the first)."""

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#23395d;color:#fff;padding:.6em 1em}header a{color:#fff;margin-right:1.2em;text-decoration:none;font-weight:600}
main{padding:1em 1.5em;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0;background:#fff}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef}
.text{white-space:pre-wrap;word-wrap:break-word;background:#fff;border:1px solid #ccc;padding:.5em;max-height:32em;overflow:auto;font-family:ui-monospace,monospace;font-size:.9em}
.pair{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1em}
.agree{color:#176317;font-weight:600}.disagree{color:#a31515;font-weight:600}.inconsistent{color:#a35a00;font-weight:600}.parse_failure{color:#6b2fa3;font-weight:600}
form.filters label{margin-right:1em}.note{color:#555;font-size:.9em}.error{color:#a31515;font-weight:600;border:1px solid #a31515;padding:.5em;background:#fff}
textarea{width:100%;box-sizing:border-box;font-family:ui-monospace,monospace}
table.judgments{width:100%}table.judgments th.judgment{width:35%}td.name{white-space:nowrap}
"""


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too, so it is also safe inside an attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


def link(path: str, text: Any, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f'<a href="{esc(path + ("?" + query if query else ""))}">{esc(text)}</a>'


def layout(title: str, body: str) -> str:
    nav = "".join(f'<a href="{href}">{name}</a>' for href, name in (
        ("/", "Runs"), ("/items", "Judgments"), ("/compare", "Compare"), ("/mtbench", "MT-bench"), ("/playground", "Playground")))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)} · judgetrain browse</title>"
            f"<style>{STYLE}</style></head><body><header>{nav}</header><main><h1>{esc(title)}</h1>{body}</main></body></html>")


def text_block(text: Any, element_id: str = "") -> str:
    attribute = f' id="{esc(element_id)}"' if element_id else ""
    return f'<div class="text"{attribute}>{esc(text)}</div>'


def select(name: str, options: Iterable[tuple[str, str]], chosen: str, label: str) -> str:
    items = "".join(f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(t)}</option>' for v, t in options)
    return f'<label>{esc(label)} <select name="{esc(name)}" id="{esc(name)}">{items}</select></label>'


def _agreement_cell(word: str) -> str:
    return f'<span class="{esc(word)}">{esc(word.replace("_", " "))}</span>'


def _label_text(label: dict[str, Any]) -> str:
    parts = []
    if label.get("winner") is not None:
        parts.append(str(label["winner"]))
    if label.get("scores") is not None:
        parts.append("scores " + ", ".join("?" if s is None else f"{s:g}" for s in label["scores"]))
    return "; ".join(parts)


# --- runs -------------------------------------------------------------------------------------------

def index_page(runs: Sequence[Run], mtbench: Sequence[MTBenchDir]) -> str:
    rows = []
    for i, run in enumerate(runs):
        metrics = run.metrics
        shown = ", ".join(f"{k}={v['value']:.3f}" for k, v in list(metrics.items())[:4]
                          if k != "num_items" and isinstance(v, dict) and v.get("value") is not None)
        # Beside the headline: whether the judge knows something answer length does not.
        by_length = ", ".join(f"{k}={run.length[k]['value']:.3f}" for k in LENGTH_SHOWN
                              if isinstance(run.length.get(k), dict) and run.length[k].get("value") is not None)
        rows.append(f"<tr><td>{link('/items', run.name, run=i)}</td><td>{esc(run.benchmark)}</td><td>{esc(run.judge)}</td>"
                    f"<td>{esc(run.template)}</td><td>{len(run.rows)}</td><td>{esc(shown)}</td>"
                    f"<td class='length'>{esc(by_length or '—')}</td></tr>")
    body = ("<h2>Evaluation runs</h2>" + ("<table><tr><th>run</th><th>benchmark</th><th>judge</th><th>template</th>"
            "<th>items</th><th>headline</th><th>by length (characters)</th></tr>" + "".join(rows) + "</table>"
            if rows else "<p>none given</p>"))
    dirs = "".join(f"<li>{link('/mtbench', d.name, dir=i)}: {len(d.questions)} questions, {len(d.answers)} models' answers, "
                   f"{len(d.pairs)} pair and {len(d.singles)} single judgments</li>" for i, d in enumerate(mtbench))
    body += "<h2>MT-bench dirs</h2>" + (f"<ul>{dirs}</ul>" if dirs else "<p>none given</p>")
    return layout("judgetrain browse", body)


def _filter_values(runs: Sequence[Run], params: dict[str, str]) -> list[tuple[int, Run, dict[str, Any]]]:
    chosen_run = params.get("run", "")
    out = []
    for i, run in enumerate(runs):
        if chosen_run and chosen_run != str(i):
            continue
        if params.get("benchmark") and run.benchmark != params["benchmark"]:
            continue
        for row in run.rows:
            if params.get("group") and (row.get("group") or "") != params["group"]:
                continue
            if params.get("verdict") and outcome(row, run.kind) != params["verdict"]:
                continue
            if params.get("agreement") and agreement(row, run.kind) != params["agreement"]:
                continue
            needle = params.get("q", "").lower()
            if needle and needle not in row["id"].lower() and not any(needle in (t or "").lower() for t in row.get("raw_texts") or []):
                continue
            out.append((i, run, row))
    return out


def items_page(runs: Sequence[Run], params: dict[str, str]) -> str:
    benchmarks = sorted({r.benchmark for r in runs})
    groups = sorted({row.get("group") for r in runs for row in r.rows if row.get("group")})
    verdicts = sorted({outcome(row, r.kind) for r in runs for row in r.rows})
    form = ('<form class="filters" method="get" action="/items">'
            + select("run", [("", "all runs")] + [(str(i), f"{r.name} ({r.benchmark}, {r.judge})") for i, r in enumerate(runs)],
                     params.get("run", ""), "run")
            + select("benchmark", [("", "any")] + [(b, b) for b in benchmarks], params.get("benchmark", ""), "benchmark")
            + select("group", [("", "any")] + [(g, g) for g in groups], params.get("group", ""), "group")
            + select("verdict", [("", "any")] + [(v, v) for v in verdicts], params.get("verdict", ""), "verdict")
            + select("agreement", [("", "any")] + [(a, a.replace("_", " ")) for a in AGREEMENTS], params.get("agreement", ""), "agreement")
            + f'<label>text <input name="q" id="q" value="{esc(params.get("q", ""))}"></label>'
            + '<button type="submit" id="apply">Apply</button></form>')
    matches = _filter_values(runs, params)
    try:
        page = max(0, int(params.get("page", "0")))
    except ValueError:
        page = 0
    shown = matches[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    table_rows = []
    for i, run, row in shown:
        word = agreement(row, run.kind)
        table_rows.append(
            f'<tr class="item"><td>{link("/item", row["id"], run=i, id=row["id"])}</td><td>{esc(run.name)}</td>'
            f'<td>{esc(row.get("group") or "")}</td><td>{esc(row.get("gold_winner") or row.get("gold_score"))}</td>'
            f'<td>{esc(row.get("verdict"))}</td><td>{esc(row.get("verdict_swapped"))}</td>'
            f'<td>{esc(outcome(row, run.kind))}</td><td>{_agreement_cell(word)}</td></tr>')
    pager = ""
    if len(matches) > PAGE_SIZE:
        base = {k: v for k, v in params.items() if k != "page"}
        if page > 0:
            pager += link("/items", "« previous", **base, page=page - 1) + " "
        if (page + 1) * PAGE_SIZE < len(matches):
            pager += link("/items", "next »", **base, page=page + 1)
    body = (form + f'<p id="count">{len(matches)} item(s) match; showing {len(shown)}.</p>{pager}'
            "<table><tr><th>item</th><th>run</th><th>group</th><th>gold</th><th>verdict (original)</th>"
            "<th>verdict (swapped, mapped back)</th><th>outcome</th><th>agreement</th></tr>" + "".join(table_rows) + f"</table>{pager}")
    return layout("Judgments", body)


def _turns_block(turns: Sequence[str], prefix: str) -> str:
    if len(turns) == 1:
        return text_block(turns[0], prefix)
    return "".join(f"<h4>turn {t}</h4>" + text_block(text, f"{prefix}-turn{t}") for t, text in enumerate(turns, start=1))


def _call_block(call: dict[str, Any], title: str) -> str:
    verdict = call.get("verdict") or {}
    failure = call.get("parse_failure") or {}
    said = verdict.get("winner") if verdict else None
    lines = [f"<h4>{esc(title)}</h4>", "<table>"]
    if verdict:
        lines.append(f"<tr><th>verdict</th><td class='verdict'>{esc(said)}</td></tr>")
        if verdict.get("scores") is not None:
            lines.append(f"<tr><th>scores</th><td>{esc(', '.join('?' if s is None else f'{s:g}' for s in verdict['scores']))}</td></tr>")
    elif failure:
        lines.append(f"<tr><th>parse failure</th><td class='parse_failure'>{esc(failure.get('reason'))}</td></tr>")
    elif call.get("error"):
        lines.append(f"<tr><th>error</th><td class='disagree'>{esc(call['error'])}</td></tr>")
    if call.get("verdict_probabilities"):
        probs = ", ".join(f"{k}={v:.3f}" for k, v in call["verdict_probabilities"].items())
        lines.append(f"<tr><th>verdict probabilities</th><td>{esc(probs)}</td></tr>")
    lines.append(f"<tr><th>backend</th><td>{esc(call.get('backend'))} {esc(call.get('model'))}, template {esc(call.get('template'))}</td></tr>")
    lines.append("</table>")
    lines.append("<p>critique / raw output:</p>" + text_block(call.get("raw_text", ""), f"raw-{title.split()[0]}"))
    prompt = "\n\n".join(f"[{m.get('role')}]\n{m.get('content')}" for m in call.get("prompt_messages", []))
    lines.append(f"<details><summary>prompt sent</summary>{text_block(prompt)}</details>")
    return "".join(lines)


def item_page(run: Run, run_index: int, item_id: str) -> str:
    row = run.row(item_id)
    if row is None:
        return layout("Item not found", f"<p class='error'>run {esc(run.name)} has no item {esc(item_id)}</p>")
    texts = run.texts(item_id)
    parts = [f"<p>run {link('/items', run.name, run=run_index)} · benchmark {esc(run.benchmark)} · judge {esc(run.judge)}"
             f" · group {esc(row.get('group') or '-')}</p>",
             f"<p>outcome <b id='outcome'>{esc(outcome(row, run.kind))}</b> · {_agreement_cell(agreement(row, run.kind))}</p>"]
    if texts.from_prompt:
        parts.append(f"<p class='note'>{esc(run.texts_note)}</p><h2>Prompt the judge saw</h2>"
                     + text_block("\n\n".join(f"[{m.get('role')}]\n{m.get('content')}" for m in texts.prompt), "prompt"))
    else:
        parts.append(f"<p class='note' id='texts-source'>question and answers from {esc(texts.source)}</p>"
                     "<h2>Question</h2>" + _turns_block(texts.question, "question"))
        if texts.reference:
            parts.append("<h2>Reference answer</h2>" + _turns_block(texts.reference, "reference"))
        columns = []
        for position, (letter, answer) in enumerate(zip("AB", texts.answers)):
            model = texts.models[position] if position < len(texts.models) and texts.models[position] else "?"
            columns.append(f"<div><h3>Answer {letter} <span class='note'>({esc(model)})</span></h3>"
                           + _turns_block(answer, f"answer-{letter}") + "</div>")
        parts.append("<h2>Answers</h2><div class='pair'>" + "".join(columns) + "</div>")
    labels = "".join(f"<tr><td>{esc(who)}</td><td>{esc(_label_text(label))}</td></tr>" for who, label in row.get("labels", {}).items())
    parts.append(f"<h2>Labels</h2><table id='labels'><tr><th>who</th><th>label</th></tr>{labels}</table>")
    parts.append("<h2>The judge</h2>")
    calls = row.get("judgments") or []
    if calls:
        titles = {"original": "original order", "swapped": "swapped order (verdict mapped back)",
                  "first_answer": "first answer", "second_answer": "second answer"}
        blocks = [f"<div>{_call_block(call, titles.get(order, order))}</div>"
                  for order, call in zip(row.get("orders") or [], calls)]
        parts.append("<div class='pair'>" + "".join(blocks) + "</div>")
    else:
        for order, raw, failure in zip(row.get("orders") or [], row.get("raw_texts") or [], row.get("parse_failures") or []):
            verdict = row.get("verdict_swapped") if order == "swapped" else row.get("verdict")
            parts.append(f"<h4>{esc(order)}</h4><p>verdict {esc(verdict)}"
                         + (f" · parse failure: {esc(failure)}" if failure else "") + "</p>" + text_block(raw))
    return layout(f"Item {item_id}", "".join(parts))


def compare_page(runs: Sequence[Run], params: dict[str, str]) -> str:
    options = [(str(i), f"{r.name} ({r.benchmark}, {r.judge})") for i, r in enumerate(runs)]
    first, second = params.get("a", "0"), params.get("b", "1" if len(runs) > 1 else "0")
    form = ('<form class="filters" method="get" action="/compare">' + select("a", options, first, "run A")
            + select("b", options, second, "run B") + '<button type="submit" id="apply">Compare</button></form>')
    try:
        run_a, run_b = runs[int(first)], runs[int(second)]
    except (ValueError, IndexError):
        return layout("Compare runs", form + "<p class='error'>pick two runs</p>")
    if run_a.benchmark != run_b.benchmark:
        return layout("Compare runs", form + f"<p class='error'>the runs are on different benchmarks ({esc(run_a.benchmark)} and "
                      f"{esc(run_b.benchmark)}); pick two runs of the same benchmark</p>")
    common = [row["id"] for row in run_a.rows if run_b.row(row["id"]) is not None]
    entries = []
    for item_id in common:
        row_a, row_b = run_a.row(item_id), run_b.row(item_id)
        said_a, said_b = outcome(row_a, run_a.kind), outcome(row_b, run_b.kind)
        entries.append((said_a == said_b, item_id, row_a, row_b, said_a, said_b))
    # Disagreements first, each group in the runs' item order (sorted() is stable).
    entries.sort(key=lambda e: e[0])
    disagreements = sum(1 for e in entries if not e[0])
    table = "".join(
        f'<tr class="{"same" if same else "differ"}"><td>{link("/item", item_id, run=first, id=item_id)}</td>'
        f'<td>{esc(row_a.get("gold_winner") or row_a.get("gold_score"))}</td>'
        f'<td>{esc(said_a)} {_agreement_cell(agreement(row_a, run_a.kind))}</td>'
        f'<td>{esc(said_b)} {_agreement_cell(agreement(row_b, run_b.kind))} {link("/item", "(open)", run=second, id=item_id)}</td>'
        f'<td>{"same" if same else "<b>differ</b>"}</td></tr>'
        for same, item_id, row_a, row_b, said_a, said_b in entries)
    body = (form + f"<p id='summary'>{len(common)} items in both runs; the judges differ on {disagreements}.</p>"
            f"<table><tr><th>item</th><th>gold</th><th>A: {esc(run_a.name)} ({esc(run_a.judge)})</th>"
            f"<th>B: {esc(run_b.name)} ({esc(run_b.judge)})</th><th></th></tr>{table}</table>")
    return layout("Compare runs", body)


# --- MT-bench ---------------------------------------------------------------------------------------

def _slot_name(slot: str | None, pair) -> str:
    """The model a FastChat winner slot (``model_1`` / ``model_2``) names, or the slot itself (tie, error)."""
    if slot is None:
        return "-"
    winner = {"model_1": pair.model_1, "model_2": pair.model_2}.get(slot)
    return winner if winner is not None else slot


def _mtbench_pair_table(pairs: Sequence[Any], turn: int, model_a: str, model_b: str) -> str:
    rows = "".join(
        f"<tr><td class='name'>{esc(p.judge)}</td><td class='name'>{esc(p.model_1)}<br>vs {esc(p.model_2)}</td>"
        f"<td class='verdict'>{esc(_slot_name(p.g1_winner, p))}</td><td>{esc(_slot_name(p.g2_winner, p))}</td>"
        f"<td>{text_block(p.g1_judgment) if p.g1_judgment else ''}</td><td>{text_block(p.g2_judgment) if p.g2_judgment else ''}</td></tr>"
        for p in pairs)
    return (f"<h3>Pairwise judgments of turn {turn}</h3><p>{len(pairs)} judgment(s) of {esc(model_a)} vs {esc(model_b)}</p>"
            + (f"<table class='judgments' id='pairs-turn{turn}'><tr><th>judge</th><th>as listed</th><th>winner (game 1)</th>"
               f"<th>winner (game 2, swapped)</th><th class='judgment'>judgment 1</th><th class='judgment'>judgment 2</th></tr>{rows}</table>"
               if pairs else ""))


def _mtbench_single_table(singles: Sequence[Any], turn: int) -> str:
    rows = "".join(f"<tr><td>{esc(s.model)}</td><td>{esc(s.judge)}</td>"
                   f"<td class='grade'>{esc('failed' if s.score is None else f'{s.score:g}')}</td>"
                   f"<td>{text_block(s.judgment)}</td></tr>" for s in singles)
    return (f"<h3>Single-answer grades of turn {turn}</h3>"
            + (f"<table class='judgments' id='singles-turn{turn}'><tr><th>model</th><th>judge</th><th>grade</th>"
               f"<th class='judgment'>judgment</th></tr>{rows}</table>" if singles else "<p>none</p>"))


def mtbench_page(dirs: Sequence[MTBenchDir], params: dict[str, str]) -> str:
    if not dirs:
        return layout("MT-bench", "<p>no MT-bench dir was given: pass a dir holding question.jsonl and model_answer/</p>")
    try:
        index = min(max(0, int(params.get("dir", "0"))), len(dirs) - 1)
    except ValueError:
        index = 0
    bench = dirs[index]
    models = bench.models
    question_ids = sorted(bench.questions)
    try:
        question_id = int(params.get("qid") or question_ids[0])
    except ValueError:
        question_id = question_ids[0]
    model_a = params.get("m1") or (models[0] if models else "")
    model_b = params.get("m2") or (models[1] if len(models) > 1 else model_a)
    form = ('<form class="filters" method="get" action="/mtbench">'
            + select("dir", [(str(i), d.name) for i, d in enumerate(dirs)], str(index), "dir")
            + select("qid", [(str(q), f"{q} ({bench.questions[q].get('category', '')})") for q in question_ids], str(question_id), "question")
            + select("m1", [(m, m) for m in models], model_a, "model A")
            + select("m2", [(m, m) for m in models], model_b, "model B")
            + '<button type="submit" id="apply">Show</button></form>')
    question = bench.questions.get(question_id)
    if question is None:
        return layout("MT-bench", form + f"<p class='error'>no question {question_id} in {esc(bench.path)}</p>")
    parts = [form, f"<p>category {esc(question.get('category', ''))}</p>"]
    pairs = bench.pair_judgments(question_id, model_a, model_b)
    singles = [s for model in dict.fromkeys((model_a, model_b)) for s in bench.single_judgments(question_id, model)]
    # Each turn's judgments sit under that turn's answers, where they are read; a judgment of a turn
    # the question does not have is listed after the last one.
    turns = list(range(1, len(question["turns"]) + 1))
    turns += sorted({j.turn for j in [*(p for p, _ in pairs), *singles]} - set(turns))
    for turn in turns:
        parts.append(f"<h2>Turn {turn}</h2>")
        if turn <= len(question["turns"]):
            parts.append("<h3>User</h3>" + text_block(question["turns"][turn - 1], f"question-turn{turn}"))
        else:
            parts.append(f"<p class='note'>question {question_id} has no turn {turn} in question.jsonl</p>")
        for name, ref in bench.references.items():
            if question_id in ref and turn <= len(ref[question_id]):
                parts.append(f"<details><summary>reference ({esc(name)})</summary>{text_block(ref[question_id][turn - 1])}</details>")
        columns = []
        for letter, model in (("A", model_a), ("B", model_b)):
            answer_turns = bench.answers.get(model, {}).get(question_id)
            shown = text_block(answer_turns[turn - 1], f"answer-{letter}-turn{turn}") if answer_turns and turn <= len(answer_turns) else \
                "<p class='note'>no answer in model_answer/</p>"
            columns.append(f"<div><h3>{letter}: {esc(model)}</h3>{shown}</div>")
        parts.append("<div class='pair'>" + "".join(columns) + "</div>")
        parts.append(_mtbench_pair_table([p for p, _ in pairs if p.turn == turn], turn, model_a, model_b))
        parts.append(_mtbench_single_table([s for s in singles if s.turn == turn], turn))
    return layout(f"MT-bench question {question_id}", "".join(parts))


# --- playground -------------------------------------------------------------------------------------

def playground_page(form: dict[str, str], format_names: Sequence[str], judgment: Judgment | None = None,
                    error: str | None = None, card: JudgeCard | None = None, *, form_token: str,
                    allowed_base_urls: Sequence[str] = (), api_key_env: str | None = None) -> str:
    """The playground form, and the result of ``judgment`` (with the ``card`` of the judge that made it, if any).

    ``form_token`` is the server's per-process token, posted back in a hidden field (the server refuses
    a post without it); ``allowed_base_urls`` are the only URLs offered for a served judge or an API
    model (the server was started with them; none: neither kind can be used); ``api_key_env`` names
    the variable whose key an API model is sent (its name only is shown)."""
    kind = form.get("kind", "tiny")
    if allowed_base_urls:
        base_url_options = [(u, u) for u in allowed_base_urls]
    else:
        base_url_options = [("", "none allowed: start judgetrain browse with --allow-base-url URL")]
    fields = [
        '<form method="post" action="/playground" id="playground">',
        f'<input type="hidden" name="form_token" value="{esc(form_token)}">',
        "<p><label>Question<br><textarea name='question' id='question' rows='4'>" + esc(form.get("question", "")) + "</textarea></label></p>",
        "<div class='pair'><label>Answer A<br><textarea name='answer_a' id='answer_a' rows='8'>" + esc(form.get("answer_a", ""))
        + "</textarea></label><label>Answer B (leave empty to grade A alone)<br><textarea name='answer_b' id='answer_b' rows='8'>"
        + esc(form.get("answer_b", "")) + "</textarea></label></div>",
        "<p>" + select("kind", [("tiny", "tiny (random test model)"), ("export", "export dir (its judge card)"),
                                ("url", "served judge (URL; its judge card)"), ("api", "OpenAI-compatible model (URL; no card)")],
                       kind, "judge"),
        f' <label>export dir <input name="export_dir" id="export_dir" size="40" value="{esc(form.get("export_dir", ""))}"></label> ',
        select("base_url", base_url_options, form.get("base_url", ""), "URL (served judge or API model)"),
        f" <span class='note' id='api-key-note'>API key: {'$' + esc(api_key_env) if api_key_env else 'none'} "
        "(fixed when judgetrain browse starts: --api-key-env, --allow-base-url)</span></p>",
        f'<p><label>model (URL; empty: ask /v1/models) <input name="model" id="model" value="{esc(form.get("model", ""))}"></label> ',
        f'<label>judge card (URL without one, e.g. vllm serve) '
        f'<input name="card" id="card" size="30" value="{esc(form.get("card", ""))}"></label></p>',
        "<p>" + select("format", [("", "default (judge card, else judgelm)")] + [(n, n) for n in format_names], form.get("format", ""), "template"),
        f' <label>max new tokens (empty: the card\'s, else 128) <input name="max_new_tokens" id="max_new_tokens" size="5" '
        f'value="{esc(form.get("max_new_tokens", ""))}"></label></p>',
        '<button type="submit" id="judge">Judge</button></form>',
    ]
    parts = ["".join(fields)]
    if error:
        parts.append(f"<p class='error' id='error'>{esc(error)}</p>")
    if judgment is not None:
        from judgetrain.judging import outcome_of, per_order

        said = outcome_of(judgment)
        parts.append(f"<h2>Result</h2><p>outcome <b id='outcome' class='{esc(said)}'>{esc(said)}</b>"
                     f" · template <span id='template'>{esc(judgment.template)}</span> · model {esc(judgment.model)}</p>")
        if card is not None:
            parts.append(f"<p class='note' id='card-note'>judge card {esc(card.name)}: template {esc(card.template)}, "
                         f"parser {esc(card.parser.mode)}, a disagreement between the orders becomes "
                         f"{esc(card.tie_policy.disagreement)}</p>")
        orders = per_order(judgment)
        titles = ["original order", "swapped order (verdict mapped back)"] if len(orders) == 2 else ["the answer"]
        parts.append("<div class='pair'>" + "".join(f"<div>{_call_block(o.to_dict(), t)}</div>" for o, t in zip(orders, titles)) + "</div>")
    return layout("Playground", "".join(parts))


def error_page(status: int, message: str) -> str:
    return layout(f"Error {status}", f"<p class='error'>{esc(message)}</p>")
