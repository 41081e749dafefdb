"""The format registry: every family registered under versioned names, unknown names rejected with a
suggestion, every template renders the CLI's example and parses its own target back, and the
`judgetrain formats` command lists and shows them."""

import re

import pytest

from judgetrain import formats
from judgetrain.cli import main
from judgetrain.formats.cli import example_sample
from judgetrain.types import ParseFailure, Verdict


def test_names_are_versioned_unique_and_cover_every_family():
    names = formats.names()
    assert names == sorted(set(names))
    assert len(names) >= 12
    assert {formats.get(name).family for name in names} == set(formats.FAMILIES)
    for name in names:
        fmt = formats.get(name)
        assert fmt.name == name and name.startswith(f"{fmt.family}-")
        assert re.search(r"-v\d+(-|$)", name), f"{name} has no version tag"
        assert fmt.protocol in ("pairwise", "single") and fmt.description
    for family in formats.FAMILIES:
        assert [f.name for f in formats.for_family(family)] == [n for n in names if formats.get(n).family == family]


def test_unknown_name_is_an_error_with_suggestions():
    with pytest.raises(ValueError, match=r"unknown judge format 'mtbench-pair-v3'.*mtbench-pair-v2.*judgetrain formats"):
        formats.get("mtbench-pair-v3")
    with pytest.raises(ValueError, match="unknown judge format 'nothing-like-it'"):
        formats.get("nothing-like-it")


@pytest.mark.parametrize("name", formats.names())
def test_every_template_renders_the_example_and_reads_its_target(name):
    fmt = formats.get(name)
    sample = example_sample(fmt)
    messages = fmt.render(sample)
    assert messages[-1]["role"] == "assistant" and messages[-2]["role"] == "user"
    label = sample.labels["human"]
    verdict = fmt.parse(messages[-1]["content"], strict=True)
    assert isinstance(verdict, Verdict), verdict
    assert verdict.template == name and not verdict.lenient
    if fmt.protocol == "pairwise":
        assert verdict.winner == label.winner
    else:
        assert verdict.scores == label.scores
    for empty in ("", "   \n"):
        assert isinstance(fmt.parse(empty, strict=False), ParseFailure)


def test_formats_command_lists_every_template(capsys):
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for name in formats.names():
        assert re.search(rf"^{re.escape(name)}\s", out, re.MULTILINE), name
    assert f"{len(formats.names())} templates in {len(formats.FAMILIES)} families" in out


def test_formats_show_prints_fastchats_prompt_and_the_parsed_target(capsys):
    assert main(["formats", "--show", "mtbench-pair-v2"]) == 0
    out = capsys.readouterr().out
    fmt = formats.get("mtbench-pair-v2")
    assert fmt.system_prompt in out and "[The Start of Assistant A's Answer]" in out
    assert '"winner": "A"' in out


def test_formats_show_unknown_name_fails_with_a_message(capsys):
    assert main(["formats", "--show", "judgelm-v9"]) == 1
    assert "unknown judge format 'judgelm-v9'" in capsys.readouterr().err
