"""`judgetrain label` with a local OpenAI-compatible teacher: parsed judgments become a training-ready
prepared dir, failures are set aside with their raw text, the cost cap stops the run, a resumed run
pays for nothing twice, and the API key appears in no output."""

from __future__ import annotations

import json
import logging

import pytest

from judgetrain.cli import main
from judgetrain.types import Answer, JudgeSample
from openai_fault_server import DEFAULT_REPLY, FaultServer, prompt_key

FAKE_KEY = "sk-judgetrain-LABEL-FAKE-0c9d8e7f"
TEACHER = "openai:test-teacher"
PRICE = ["1000", "2000"]  # USD per 1M tokens: 100 in + 10 out tokens = 0.12 USD per call


def _write_samples(path, samples):
    path.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples))
    return path


def _pair(i: int, first: str = "first answer", second: str = "second answer", **fields) -> JudgeSample:
    return JudgeSample(id=f"s{i}", source="test", question=f"Question q-{i}?", answers=(Answer(first), Answer(second)), **fields)


def _label_args(server: FaultServer, input_path, out, *extra) -> list[str]:
    return ["label", "--input", str(input_path), "--format", "judgelm-v1", "--teacher", TEACHER,
            "--base-url", server.url, "--api-key-env", "JT_LABEL_KEY", "--out", str(out),
            "--timeout-seconds", "2", "--max-retries", "1", "--max-concurrency", "2",
            "--price-per-1m-tokens", *PRICE, *extra]


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_label_keeps_parsed_judgments_and_sets_failures_aside(tmp_path, monkeypatch, capsys, caplog):
    from judgetrain import formats
    from judgetrain.data.prepared import Manifest, read_samples

    monkeypatch.setenv("JT_LABEL_KEY", FAKE_KEY)
    samples = [_pair(i) for i in range(5)]
    samples.append(_pair(5, judgment="7 7\nalready judged"))
    input_path = _write_samples(tmp_path / "in.jsonl", samples)
    out = tmp_path / "labelled"
    script = {"q-3?": ["500", "500"], "q-4?": ["echo-auth"]}
    replies = {"q-1?": "I would rather not say which one is better."}
    with caplog.at_level(logging.INFO), FaultServer(script, replies) as server:
        assert main(_label_args(server, input_path, out)) == 0
    printed = capsys.readouterr()
    labelled = {s.id: s for s in read_samples(out)}
    assert sorted(labelled) == ["s0", "s2"]
    fmt = formats.get("judgelm-v1")
    for sample in labelled.values():
        assert sample.judgment == DEFAULT_REPLY
        assert sample.labels["teacher:test-teacher"].scores == (8.0, 3.0)
        assert sample.labels["teacher:test-teacher"].winner == "A"
        assert sample.meta["judgment_format"] == "judgelm-v1" and sample.meta["teacher"] == "teacher:test-teacher"
        assert fmt.target(sample) == DEFAULT_REPLY  # training-ready: the teacher's text is the target
    failures = {f["sample_id"]: f for f in _read_jsonl(out / "failures.jsonl")}
    assert failures["s1"]["kind"] == "parse_failure" and failures["s1"]["raw_text"] == replies["q-1?"]
    assert failures["s3"]["kind"] == "error" and "HTTP 500" in failures["s3"]["reason"]
    assert failures["s4"]["kind"] == "error" and "HTTP 400" in failures["s4"]["reason"]
    summary = json.loads((out / "label_summary.json").read_text())
    assert (summary["num_asked"], summary["num_labelled"], summary["num_parse_failures"], summary["num_errors"],
            summary["num_already_judged"]) == (5, 2, 1, 2, 1)
    assert summary["stopped_at_cost_cap"] is False
    manifest = Manifest.read(out)
    assert manifest.samples.num_samples == 2 and manifest.details["teacher"] == "teacher:test-teacher"
    assert (manifest.source, manifest.settings.format, manifest.rows_read, manifest.rows_written) == ("label", "judgelm-v1", 6, 2)
    # The manifest shape `judgetrain prep` and the quickstart write too (all three go through prepare_dataset).
    prep_out = tmp_path / "prep"
    assert main(["prep", "--source", "jsonl", "--input", str(input_path), "--out", str(prep_out)]) == 0
    labelled_json, prep_json = (json.loads((d / "manifest.json").read_text()) for d in (out, prep_out))
    assert sorted(labelled_json) == sorted(prep_json)
    assert sorted(labelled_json["settings"]) == sorted(prep_json["settings"])
    assert sorted(labelled_json["settings"]["augmentation"]) == sorted(prep_json["settings"]["augmentation"])
    assert sorted(labelled_json["samples"]) == sorted(prep_json["samples"])
    assert "labelled 2 of 5 samples" in printed.out
    # The key was sent to the teacher, and is in none of the outputs, the cache, the logs or the console.
    assert f"Bearer {FAKE_KEY}" in server.auth_headers
    for path in out.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path
    assert FAKE_KEY not in printed.out + printed.err + caplog.text


def test_cost_cap_stops_the_run_and_a_resume_repeats_no_paid_call(tmp_path, monkeypatch, capsys):
    from judgetrain.data.prepared import read_samples

    monkeypatch.delenv("JT_LABEL_KEY", raising=False)
    samples = [_pair(i) for i in range(8)]
    input_path = _write_samples(tmp_path / "in.jsonl", samples)
    out = tmp_path / "labelled"
    with FaultServer({"q-2?": ["429"], "q-5?": ["drop"]}) as server:
        capped = _label_args(server, input_path, out, "--max-cost-usd", "0.3", "--chunk-size", "2", "--max-concurrency", "1")
        assert main(capped) == 0
        first_summary = json.loads((out / "label_summary.json").read_text())
        assert first_summary["stopped_at_cost_cap"] is True
        assert "STOPPED at the cost cap" in capsys.readouterr().out
        # 0.12 USD per call: the third paid call crosses 0.30 USD and nothing more is sent.
        assert first_summary["num_labelled"] == 3 and first_summary["usage"]["cost_usd"] == pytest.approx(0.36)
        assert first_summary["num_not_sent_cost_cap"] == 5
        assert len(read_samples(out)) == 3
        assert sum(server.ok_calls.values()) == 3
        done_first = {prompt_key(b["messages"]) for b in server.bodies}
        attempts_first = dict(server.attempts)

        assert main(_label_args(server, input_path, out)) == 0
        second_summary = json.loads((out / "label_summary.json").read_text())
    assert second_summary["num_labelled"] == 8 and second_summary["stopped_at_cost_cap"] is False
    assert second_summary["usage"]["cost_usd"] == pytest.approx(5 * 0.12)  # only the five new calls were paid
    finished_first = {k for k in done_first if server.ok_calls[k] >= 1 and attempts_first[k] == server.attempts[k]}
    assert len(finished_first) == 3
    assert all(count == 1 for count in server.ok_calls.values()) and len(server.ok_calls) == 8
    assert sorted(s.id for s in read_samples(out)) == [f"s{i}" for i in range(8)]


def test_both_orders_keeps_only_labels_the_orders_agree_on(tmp_path, monkeypatch):
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.data.prepared import read_samples

    monkeypatch.delenv("JT_LABEL_KEY", raising=False)

    def position_aware_teacher(content: str) -> str:
        # A consistent judge for q-0 (prefers GOOD wherever it is shown); a position-biased one for q-1.
        if "q-1?" in content:
            return "8 3\nThe first one is better."
        good_first = content.index("GOOD") < content.index("BAD")
        return "9 2\nThe GOOD answer wins." if good_first else "2 9\nThe GOOD answer wins."

    samples = [_pair(0, "GOOD answer", "BAD answer"), _pair(1, "GOOD answer", "BAD answer")]
    input_path = tmp_path / "prepared"  # a prepared dir as input this time
    prepare_dataset(samples, input_path, source="test")
    out = tmp_path / "labelled"
    with FaultServer(reply_fn=position_aware_teacher) as server:
        assert main(_label_args(server, input_path, out, "--both-orders")) == 0
    assert sum(server.attempts.values()) == 4  # two orders per sample
    (kept,) = read_samples(out)
    assert kept.id == "s0" and kept.labels["teacher:test-teacher"].winner == "A"
    assert kept.labels["teacher:test-teacher"].scores == (9.0, 2.0)
    failures = _read_jsonl(out / "failures.jsonl")
    assert [(f["sample_id"], f["kind"]) for f in failures] == [("s1", "inconsistent")]


def test_bad_teacher_spec_and_missing_price_are_clear_errors(tmp_path, capsys):
    input_path = _write_samples(tmp_path / "in.jsonl", [_pair(0)])
    assert main(["label", "--input", str(input_path), "--format", "judgelm-v1", "--teacher", "gpt-4o",
                 "--out", str(tmp_path / "o")]) == 1
    assert "openai:MODEL" in capsys.readouterr().err
    assert main(["label", "--input", str(input_path), "--format", "judgelm-v1", "--teacher", "openai:my-local-model",
                 "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "o"), "--max-cost-usd", "1"]) == 1
    assert "--price-per-1m-tokens" in capsys.readouterr().err
    assert main(["label", "--input", str(input_path), "--format", "judgelm-v1", "--teacher", "openai:gpt-4o",
                 "--api-key-env", "JT_SURELY_UNSET_KEY_VAR", "--out", str(tmp_path / "o")]) == 1
    assert "export JT_SURELY_UNSET_KEY_VAR" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_pair(0).to_dict()) + "\n{\"id\": \"x\"}\n")
    assert main(["label", "--input", str(bad), "--format", "judgelm-v1", "--teacher", TEACHER, "--out", str(tmp_path / "o")]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["label", "--input", str(input_path), "--format", "judgelm-v1", "--teacher", TEACHER, "--out", str(busy)]) == 1
    assert "not a labelled dir" in capsys.readouterr().err and (busy / "notes.txt").read_text() == "mine"
