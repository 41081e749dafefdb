"""`judgetrain browse` on 127.0.0.1 over real evaluation runs and an MT-bench dir, driven by a real
headless Chromium (Debian's chromium + chromium-driver, through selenium with the driver path given,
so nothing is downloaded): filter the judgments, open an item, browse a run dir whose benchmark data
is gone, compare two runs, read an MT-bench question, and judge in the playground with the tiny
model and with a tiny judge trained and exported here (its card read by `Judge.from_card`, locally
and over HTTP). Untrusted text holding <script> must be shown as text and never run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCRIPT_TEXT = "<script>document.title='pwned'</script>"
LIMIT_ITEMS = 3

NO_BROWSER_REASON = ("needs Debian's headless browser: apt-get install -y chromium chromium-driver "
                     "(/usr/bin/chromium and /usr/bin/chromedriver) and pip install selenium")


def _predictions_run(tmp: Path, name: str, shared_data: Path, verdicts: list[str]) -> Path:
    from judgetrain_eval.report import write_run
    from judgetrain_eval.runner import run_benchmark

    ids = [json.loads(line)["id"] for line in (tmp / "tiny-run" / "judgments.jsonl").read_text().splitlines()]
    predictions = tmp / f"{name}.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "verdict": v}) + "\n" for i, v in zip(ids, verdicts)))
    run = run_benchmark("pandalm-test", predictions=predictions, data_dir=shared_data, limit=LIMIT_ITEMS, num_resamples=0)
    return write_run(run, tmp / name, plots=False)


def _portable_run(tmp: Path, run_dir: Path) -> Path:
    """A copy of ``run_dir`` whose results.json points at benchmark data that is not on this machine,
    with the recorded texts taken out of its last row (a row written before they were recorded)."""
    portable = tmp / "portable-run"
    shutil.copytree(run_dir, portable)
    results = json.loads((portable / "results.json").read_text())
    results["config"]["data"] = str(tmp / "moved-away" / "pandalm_test.json")
    (portable / "results.json").write_text(json.dumps(results))
    rows = [json.loads(line) for line in (portable / "judgments.jsonl").read_text().splitlines()]
    for name in ("question", "answers", "reference"):
        rows[-1].pop(name)
    (portable / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return portable


def _mtbench_dir(tmp: Path, shared_data: Path) -> Path:
    """Question 81 and the answers of two models from the shared FastChat data, plus FastChat-schema
    judgment files written here (the GPT-4 judgment files are not in the shared data); one judgment
    text carries a <script> tag."""
    source = shared_data / "fastchat_mt_bench"
    root = tmp / "mt_bench"
    (root / "model_answer").mkdir(parents=True)
    (root / "model_judgment").mkdir()
    question = next(line for line in (source / "question.jsonl").read_text().splitlines() if json.loads(line)["question_id"] == 81)
    (root / "question.jsonl").write_text(question + "\n")
    for model in ("gpt-4", "llama-13b"):
        line = next(line for line in (source / "model_answer" / f"{model}.jsonl").read_text().splitlines()
                    if json.loads(line)["question_id"] == 81)
        (root / "model_answer" / f"{model}.jsonl").write_text(line + "\n")
    pair = {"question_id": 81, "model_1": "llama-13b", "model_2": "gpt-4", "g1_winner": "model_2", "g2_winner": "model_2",
            "judge": ["gpt-4", "pair-v2"], "g1_judgment": f"Assistant B is more vivid. {SCRIPT_TEXT} [[B]]",
            "g2_judgment": "Assistant A is more vivid. [[A]]", "turn": 1}
    second_turn = {**pair, "g1_winner": "tie", "g2_winner": "model_1", "g1_judgment": "Both start with A. [[C]]",
                   "g2_judgment": "Assistant A does better. [[A]]", "turn": 2}
    (root / "model_judgment" / "gpt-4_pair.jsonl").write_text(json.dumps(pair) + "\n" + json.dumps(second_turn) + "\n")
    singles = [{"question_id": 81, "model": "gpt-4", "judge": ["gpt-4", "single-v1"], "judgment": "Rating: [[9]]", "score": 9, "turn": 1},
               {"question_id": 81, "model": "llama-13b", "judge": ["gpt-4", "single-v1"], "judgment": "Rating: [[3]]", "score": 3, "turn": 1}]
    (root / "model_judgment" / "gpt-4_single.jsonl").write_text("".join(json.dumps(s) + "\n" for s in singles))
    return root


@pytest.fixture(scope="module")
def browse_url(tmp_path_factory, shared_data):
    """Three pandalm-test runs on the same items (the tiny judge, an oracle predictions file, and the
    oracle with one verdict changed), the tiny judge's run moved away from its benchmark data, an
    MT-bench dir, and `judgetrain browse` serving them."""
    from judgetrain_eval.report import write_run
    from judgetrain_eval.runner import run_benchmark

    tmp = tmp_path_factory.mktemp("browse")
    tiny = run_benchmark("pandalm-test", judge="tiny", format_name="judgelm-v1", data_dir=shared_data,
                         limit=LIMIT_ITEMS, num_resamples=0, max_new_tokens=8)
    write_run(tiny, tmp / "tiny-run", plots=False)
    gold = [row.gold_winner for row in tiny.rows]
    changed = list(gold)
    changed[1] = "tie" if gold[1] != "tie" else "A"
    oracle = _predictions_run(tmp, "oracle-run", shared_data, gold)
    other = _predictions_run(tmp, "changed-run", shared_data, changed)
    portable = _portable_run(tmp, tmp / "tiny-run")
    mtbench = _mtbench_dir(tmp, shared_data)
    process = subprocess.Popen(
        [sys.executable, "-m", "judgetrain", "browse", str(tmp / "tiny-run"), str(oracle), str(other), str(portable), str(mtbench),
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if " on http://127.0.0.1:" not in line:
        process.kill()
        pytest.fail(f"judgetrain browse did not start: {line!r} {process.stderr.read()}")
    url = line.split(" on ")[1].split()[0].rstrip("/")
    yield {"url": url, "tmp": tmp, "tiny": tiny, "gold": gold, "changed": changed}
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(browse_url):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(NO_BROWSER_REASON)
    webdriver = pytest.importorskip("selenium.webdriver", reason=NO_BROWSER_REASON)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = browse_url["tmp"] / "chromium-profile"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(flag)
    # The driver path is given, so selenium's manager never looks for (or downloads) a browser.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def test_filter_open_item_and_screenshot(browse_url, browser, shared_data):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, tiny = browse_url["url"], browse_url["tiny"]
    browser.get(f"{url}/items")
    Select(browser.find_element(By.ID, "run")).select_by_value("0")
    expected_failures = [r for r in tiny.rows if any(r.parse_failures)]
    Select(browser.find_element(By.ID, "agreement")).select_by_value("parse_failure")
    browser.find_element(By.ID, "apply").click()
    # The click only starts the navigation: wait for the filtered page before reading it.
    WebDriverWait(browser, 30).until(lambda d: "agreement=parse_failure" in d.current_url)
    assert _text(browser, "#count").startswith(f"{len(expected_failures)} item(s) match")
    links = browser.find_elements(By.CSS_SELECTOR, "tr.item td:first-child a")
    assert [a.text for a in links] == [r.id for r in expected_failures]

    assert expected_failures, "the tiny judge's 8-token outputs are expected not to parse"
    row = expected_failures[0]
    links[0].click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == f"Item {row.id}")
    assert _text(browser, "h1") == f"Item {row.id}"
    page = browser.find_element(By.TAG_NAME, "main").text
    from judgetrain_eval.runner import get_benchmark

    sample = next(s for s in get_benchmark("pandalm-test").load(None, shared_data, limit=LIMIT_ITEMS) if s.id == row.id)
    assert _text(browser, "#texts-source") == "question and answers from judgments.jsonl"
    assert _text(browser, "#question") == sample.question.strip()
    assert _text(browser, "#answer-A") == sample.answers[0].text.strip()
    assert _text(browser, "#answer-B") == sample.answers[1].text.strip()
    assert "human_majority" in _text(browser, "#labels") and row.gold_winner in _text(browser, "#labels")
    assert "original order" in page and "swapped order (verdict mapped back)" in page
    assert _text(browser, "#raw-original") == row.raw_texts[0].strip()
    assert _text(browser, "#raw-swapped") == row.raw_texts[1].strip()
    shot = browse_url["tmp"] / "item.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_run_dir_without_its_benchmark_data(browse_url, browser, shared_data):
    """A run dir moved away from its benchmark data still shows each item's question and answers
    (recorded in judgments.jsonl); a row without them falls back to the prompt the judge saw."""
    from selenium.webdriver.common.by import By

    from judgetrain_eval.runner import get_benchmark

    url, rows = browse_url["url"], browse_url["tiny"].rows
    samples = {s.id: s for s in get_benchmark("pandalm-test").load(None, shared_data, limit=LIMIT_ITEMS)}
    browser.get(f"{url}/item?run=3&id={rows[0].id}")
    assert _text(browser, "#texts-source") == "question and answers from judgments.jsonl"
    assert _text(browser, "#question") == samples[rows[0].id].question.strip()
    assert _text(browser, "#answer-B") == samples[rows[0].id].answers[1].text.strip()
    assert not browser.find_elements(By.ID, "prompt")

    browser.get(f"{url}/item?run=3&id={rows[-1].id}")
    assert "the benchmark data could not be read" in browser.find_element(By.TAG_NAME, "main").text
    assert samples[rows[-1].id].answers[0].text.strip()[:60] in _text(browser, "#prompt")
    assert not browser.find_elements(By.ID, "question")


def test_compare_lists_disagreements_first(browse_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{browse_url['url']}/compare?a=1&b=2")
    assert _text(browser, "#summary") == f"{LIMIT_ITEMS} items in both runs; the judges differ on 1."
    first_row = browser.find_elements(By.CSS_SELECTOR, "tr.differ, tr.same")[0]
    assert "differ" in first_row.get_attribute("class")
    assert browse_url["tiny"].rows[1].id in first_row.text
    assert browse_url["changed"][1] in first_row.text


def test_mtbench_question_two_models_and_escaped_judgment(browse_url, browser, shared_data, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(f"{browse_url['url']}/mtbench")
    Select(browser.find_element(By.ID, "m1")).select_by_value("gpt-4")
    Select(browser.find_element(By.ID, "m2")).select_by_value("llama-13b")
    browser.find_element(By.ID, "apply").click()
    WebDriverWait(browser, 30).until(lambda d: "m2=llama-13b" in d.current_url)
    answers = {}
    for model in ("gpt-4", "llama-13b"):
        row = next(json.loads(line) for line in (shared_data / "fastchat_mt_bench" / "model_answer" / f"{model}.jsonl").read_text().splitlines()
                   if json.loads(line)["question_id"] == 81)
        answers[model] = row["choices"][0]["turns"]
    assert answers["gpt-4"][1].strip()[:80] in _text(browser, "#answer-A-turn2")
    assert answers["llama-13b"][0].strip()[:80] in _text(browser, "#answer-B-turn1")
    pairs = _text(browser, "#pairs-turn1")
    assert "gpt-4 / pair-v2" in pairs and SCRIPT_TEXT in pairs  # shown as text ...
    assert browser.title != "pwned"  # ... and never run
    # Each turn's judgments sit under that turn: the turn-2 game is a tie, then llama-13b (model_1) with the answers swapped.
    assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#pairs-turn2 td")][2:4] == ["tie", "llama-13b"]
    assert "Both start with A." not in pairs
    grades = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#singles-turn1 td.grade")]
    assert grades == ["9", "3"]
    assert not browser.find_elements(By.ID, "singles-turn2")
    # The two answers sit side by side, each column inside the window (no page-wide horizontal scroll).
    column_a = browser.find_element(By.ID, "answer-A-turn1").rect
    column_b = browser.find_element(By.ID, "answer-B-turn1").rect
    assert column_a["x"] + column_a["width"] <= column_b["x"] and column_a["y"] == column_b["y"]
    assert browser.execute_script("return document.documentElement.scrollWidth") <= \
        browser.execute_script("return window.innerWidth")
    # The whole page, beyond the window (Chromium's DevTools screenshot), to read the judgment tables too.
    import base64

    full = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    shot = tmp_path / "mtbench.png"
    shot.write_bytes(base64.b64decode(full["data"]))
    assert shot.stat().st_size > 10_000


def test_playground_tiny_both_orders_and_script_is_text(browse_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(f"{browse_url['url']}/playground")
    browser.find_element(By.ID, "question").send_keys("Name a prime number.")
    browser.find_element(By.ID, "answer_a").send_keys(SCRIPT_TEXT + " 7")
    browser.find_element(By.ID, "answer_b").send_keys("9")
    Select(browser.find_element(By.ID, "kind")).select_by_value("tiny")
    tokens = browser.find_element(By.ID, "max_new_tokens")
    tokens.clear()
    tokens.send_keys("8")
    browser.find_element(By.ID, "judge").click()
    WebDriverWait(browser, 80).until(lambda d: d.find_elements(By.ID, "outcome") or d.find_elements(By.ID, "error"))
    assert not browser.find_elements(By.ID, "error"), _text(browser, "#error")
    assert _text(browser, "#outcome") in ("A", "B", "tie", "inconsistent", "parse_failure")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "original order" in page and "swapped order (verdict mapped back)" in page
    assert "backend transformers tiny" in page
    assert _text(browser, "#raw-original") and _text(browser, "#raw-swapped")
    # The answer is echoed in the form and in the prompt sent, as text; the tag never became an element.
    assert SCRIPT_TEXT in browser.find_element(By.ID, "answer_a").get_attribute("value")
    assert SCRIPT_TEXT in page
    assert browser.title != "pwned" and not browser.find_elements(By.CSS_SELECTOR, "main script")


@pytest.fixture(scope="module")
def exported_judge(tiny_generative_export):
    """The tiny LoRA judge (its card names the template it was trained on, mtbench-pair-v2, not the
    playground's default)."""
    from tests.conftest import TINY_JUDGE_TEMPLATE

    assert TINY_JUDGE_TEMPLATE != "judgelm-v1"
    return tiny_generative_export, TINY_JUDGE_TEMPLATE


def test_playground_export_dir_says_what_the_client_says(browse_url, browser, exported_judge):
    """Judging through the page with an export dir gives the judge card's template and exactly the
    raw texts and outcome `Judge.from_card(dir).compare` gives."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from judgetrain import Judge
    from judgetrain.judging import outcome_of

    out, template = exported_judge
    question, answer_a, answer_b = "Name a prime number.", "7 is prime.", "9 is prime."
    browser.get(f"{browse_url['url']}/playground")
    browser.find_element(By.ID, "question").send_keys(question)
    browser.find_element(By.ID, "answer_a").send_keys(answer_a)
    browser.find_element(By.ID, "answer_b").send_keys(answer_b)
    Select(browser.find_element(By.ID, "kind")).select_by_value("export")
    browser.find_element(By.ID, "export_dir").send_keys(str(out))
    assert browser.find_element(By.ID, "max_new_tokens").get_attribute("value") == "", "empty: the card's budget"
    browser.find_element(By.ID, "judge").click()
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.ID, "outcome") or d.find_elements(By.ID, "error"))
    assert not browser.find_elements(By.ID, "error"), _text(browser, "#error")
    assert _text(browser, "#template") == template
    assert f"template {template}" in _text(browser, "#card-note") and "judge card judge" in _text(browser, "#card-note")

    client = Judge.from_card(out)
    try:
        expected = client.compare(question, answer_a, answer_b)
    finally:
        client.backend.close()
    raw = [o.raw_text for o in (expected.both_orders.original, expected.both_orders.swapped)]
    assert _text(browser, "#outcome") == outcome_of(expected)
    assert _text(browser, "#raw-original") == raw[0].strip() and _text(browser, "#raw-swapped") == raw[1].strip()
    assert "backend transformers" in browser.find_element(By.TAG_NAME, "main").text


def test_playground_over_served_judges(exported_judge):
    """Over HTTP: `judgetrain serve` of the export (card from /v1/judge_card, the same raw texts as
    the export dir), the same server as a plain OpenAI-compatible model (template picked here), and
    a server without a card route (as vllm serve), which needs the card named."""
    from judgetrain.browse.playground import JudgeChoice, Playground
    from judgetrain.serve import start_server

    out, template = exported_judge
    question, answers = "Name a prime number.", ["7", "9"]
    served, served_thread = start_server(str(out), "127.0.0.1", 0, batch_size=2)
    bare, bare_thread = start_server("tiny", "127.0.0.1", 0, batch_size=2)
    served_url, bare_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in (served, bare))
    playground = Playground(allowed_base_urls=[served_url, bare_url])
    try:
        local = playground.judge(question, answers, JudgeChoice(kind="export", target=str(out)))
        remote = playground.judge(question, answers, JudgeChoice(kind="url", target=served_url))
        assert local.template == remote.template == template
        assert [o.backend for o in (remote.both_orders.original, remote.both_orders.swapped)] == ["openai", "openai"]
        assert [o.raw_text for o in (remote.both_orders.original, remote.both_orders.swapped)] == [o.raw_text for o in (local.both_orders.original, local.both_orders.swapped)]
        assert [o.swapped for o in (remote.both_orders.original, remote.both_orders.swapped)] == [False, True]
        with pytest.raises(ValueError, match=f"card fixes the template {template}"):
            playground.judge(question, answers, JudgeChoice(kind="export", target=str(out)), format_name="judgelm-v1")

        plain = playground.judge(question, answers, JudgeChoice(kind="api", target=bare_url), max_new_tokens=8)
        assert plain.template == "judgelm-v1" and all(o["model"] == "tiny" for o in (plain.both_orders.original.to_dict(), plain.both_orders.swapped.to_dict()))
        assert "9" in plain.both_orders.original.prompt_messages[-1]["content"]
        with pytest.raises(ValueError, match="is pairwise, but 1 answer"):
            playground.judge("Q", ["only one", ""], JudgeChoice(kind="api", target=bare_url), format_name="judgelm-v1")
        with pytest.raises(ValueError, match="publishes no judge card"):
            playground.judge(question, answers, JudgeChoice(kind="url", target=bare_url))
        carded = playground.judge(question, answers, JudgeChoice(kind="url", target=bare_url, card=str(out)), max_new_tokens=4)
        assert carded.template == template and carded.both_orders.original.decoding["max_new_tokens"] == 4
    finally:
        playground.close()
        for server, thread in ((served, served_thread), (bare, bare_thread)):
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def test_bad_dirs_and_rows_are_clear_errors(tmp_path):
    from judgetrain.browse.store import load_dirs

    with pytest.raises(ValueError, match="neither an evaluation run dir"):
        load_dirs([str(tmp_path)])
    (tmp_path / "question.jsonl").write_text('{"question_id": 81, "turns": ["hi"]}\n')
    (tmp_path / "model_judgment").mkdir()
    (tmp_path / "model_judgment" / "gpt-4_pair.jsonl").write_text('{"question_id": 81, "model_1": "a", "model_2": "b"}\n{oops\n')
    with pytest.raises(ValueError, match=r"gpt-4_pair.jsonl:1: field 'g1_winner' is missing"):
        load_dirs([str(tmp_path)])
