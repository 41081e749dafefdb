"""`judgetrain browse` on 127.0.0.1 over real evaluation runs and an MT-bench dir, driven by a real
headless Chromium (Debian's chromium + chromium-driver, through selenium with the driver path given,
so nothing is downloaded): filter the judgments, open an item, compare two runs, read an MT-bench
question, and judge in the playground with the tiny model. Untrusted text holding <script> must be
shown as text and never run."""

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
    from eval.report import write_run
    from eval.runner import run_benchmark

    ids = [json.loads(line)["id"] for line in (tmp / "tiny-run" / "judgments.jsonl").read_text().splitlines()]
    predictions = tmp / f"{name}.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "verdict": v}) + "\n" for i, v in zip(ids, verdicts)))
    run = run_benchmark("pandalm-test", predictions=predictions, data_dir=shared_data, limit=LIMIT_ITEMS, num_resamples=0)
    return write_run(run, tmp / name, plots=False)


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
    (root / "model_judgment" / "gpt-4_pair.jsonl").write_text(json.dumps(pair) + "\n")
    singles = [{"question_id": 81, "model": "gpt-4", "judge": ["gpt-4", "single-v1"], "judgment": "Rating: [[9]]", "score": 9, "turn": 1},
               {"question_id": 81, "model": "llama-13b", "judge": ["gpt-4", "single-v1"], "judgment": "Rating: [[3]]", "score": 3, "turn": 1}]
    (root / "model_judgment" / "gpt-4_single.jsonl").write_text("".join(json.dumps(s) + "\n" for s in singles))
    return root


@pytest.fixture(scope="module")
def browse_url(tmp_path_factory, shared_data):
    """Three pandalm-test runs on the same items (the tiny judge, an oracle predictions file, and the
    oracle with one verdict changed), an MT-bench dir, and `judgetrain browse` serving them."""
    from eval.report import write_run
    from eval.runner import run_benchmark

    tmp = tmp_path_factory.mktemp("browse")
    tiny = run_benchmark("pandalm-test", judge="tiny", format_name="judgelm-v1", data_dir=shared_data,
                         limit=LIMIT_ITEMS, num_resamples=0, max_new_tokens=8)
    write_run(tiny, tmp / "tiny-run", plots=False)
    gold = [row.gold_winner for row in tiny.rows]
    changed = list(gold)
    changed[1] = "tie" if gold[1] != "tie" else "A"
    oracle = _predictions_run(tmp, "oracle-run", shared_data, gold)
    other = _predictions_run(tmp, "changed-run", shared_data, changed)
    mtbench = _mtbench_dir(tmp, shared_data)
    process = subprocess.Popen(
        [sys.executable, "-m", "judgetrain", "browse", str(tmp / "tiny-run"), str(oracle), str(other), str(mtbench), "--port", "0"],
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
    from selenium.webdriver.support.ui import Select

    url, tiny = browse_url["url"], browse_url["tiny"]
    browser.get(f"{url}/items")
    Select(browser.find_element(By.ID, "run")).select_by_value("0")
    expected_failures = [r for r in tiny.rows if any(r.parse_failures)]
    Select(browser.find_element(By.ID, "agreement")).select_by_value("parse_failure")
    browser.find_element(By.ID, "apply").click()
    assert "agreement=parse_failure" in browser.current_url
    assert _text(browser, "#count").startswith(f"{len(expected_failures)} item(s) match")
    links = browser.find_elements(By.CSS_SELECTOR, "tr.item td:first-child a")
    assert [a.text for a in links] == [r.id for r in expected_failures]

    assert expected_failures, "the tiny judge's 8-token outputs are expected not to parse"
    row = expected_failures[0]
    links[0].click()
    assert _text(browser, "h1") == f"Item {row.id}"
    page = browser.find_element(By.TAG_NAME, "main").text
    from eval.runner import get_benchmark

    sample = next(s for s in get_benchmark("pandalm-test").load(None, shared_data, limit=LIMIT_ITEMS) if s.id == row.id)
    assert _text(browser, "#question") == sample.question.strip()
    assert _text(browser, "#answer-A") == sample.answers[0].text.strip()
    assert _text(browser, "#answer-B") == sample.answers[1].text.strip()
    assert "human_majority" in _text(browser, "#labels") and row.gold_winner in _text(browser, "#labels")
    assert "original order" in page and "swapped order (verdict mapped back)" in page
    assert _text(browser, "#raw-original") == row.raw_texts[0].strip()
    assert _text(browser, "#raw-swapped") == row.raw_texts[1].strip()
    shot = browse_url["tmp"] / "item.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_compare_lists_disagreements_first(browse_url, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{browse_url['url']}/compare?a=1&b=2")
    assert _text(browser, "#summary") == f"{LIMIT_ITEMS} items in both runs; the judges differ on 1."
    first_row = browser.find_elements(By.CSS_SELECTOR, "tr.differ, tr.same")[0]
    assert "differ" in first_row.get_attribute("class")
    assert browse_url["tiny"].rows[1].id in first_row.text
    assert browse_url["changed"][1] in first_row.text


def test_mtbench_question_two_models_and_escaped_judgment(browse_url, browser, shared_data):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{browse_url['url']}/mtbench")
    Select(browser.find_element(By.ID, "m1")).select_by_value("gpt-4")
    Select(browser.find_element(By.ID, "m2")).select_by_value("llama-13b")
    browser.find_element(By.ID, "apply").click()
    answers = {}
    for model in ("gpt-4", "llama-13b"):
        row = next(json.loads(line) for line in (shared_data / "fastchat_mt_bench" / "model_answer" / f"{model}.jsonl").read_text().splitlines()
                   if json.loads(line)["question_id"] == 81)
        answers[model] = row["choices"][0]["turns"]
    assert answers["gpt-4"][1].strip()[:80] in _text(browser, "#answer-A-turn2")
    assert answers["llama-13b"][0].strip()[:80] in _text(browser, "#answer-B-turn1")
    pairs = _text(browser, "#pairs")
    assert "gpt-4 / pair-v2" in pairs and SCRIPT_TEXT in pairs  # shown as text ...
    assert browser.title != "pwned"  # ... and never run
    grades = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#singles td.grade")]
    assert grades == ["9", "3"]


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


def test_playground_over_a_served_judge_url():
    """The playground's URL judge: `judgetrain serve` with the tiny model on 127.0.0.1, model id read
    from /v1/models, both orders sent over HTTP."""
    from judgetrain.browse.playground import JudgeChoice, Playground
    from judgetrain.serve import start_server

    server, thread = start_server("tiny", "127.0.0.1", 0, batch_size=2)
    playground = Playground()
    try:
        choice = JudgeChoice(kind="url", target=f"http://127.0.0.1:{server.server_address[1]}")
        judgment = playground.judge("Name a prime number.", ["7", "9"], choice, max_new_tokens=8)
        orders = judgment.meta["orders"]
        assert [o["swapped"] for o in orders] == [False, True]
        assert all(o["backend"].startswith("openai") and o["model"] == "tiny" for o in orders)
        assert "9" in orders[0]["prompt_messages"][-1]["content"]
        with pytest.raises(ValueError, match="is pairwise, but 1 answer"):
            playground.judge("Q", ["only one", ""], choice, format_name="judgelm-v1")
    finally:
        playground.close()
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
