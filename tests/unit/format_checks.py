"""Checks shared by the format tests."""

from judgetrain.types import ParseFailure, Verdict

WINNERS = ("A", "B", "tie")


def check_adversarial(fmt, text: str, strict_expected, lenient_expected) -> None:
    """``fmt.parse(text)`` in strict and lenient mode gives the expected winner / first score, or a
    ParseFailure whose reason contains the expected string; ``lenient`` is set exactly when only the
    lenient reading found the verdict."""
    for strict, expected in ((True, strict_expected), (False, lenient_expected)):
        result = fmt.parse(text, strict=strict)
        if isinstance(expected, str) and expected not in WINNERS:
            assert isinstance(result, ParseFailure), (strict, result)
            assert expected in result.reason and result.raw_text == text and result.template == fmt.name
        else:
            assert isinstance(result, Verdict), (strict, result)
            assert (result.winner if fmt.protocol == "pairwise" else result.scores[0]) == expected
            assert result.lenient == (not strict and isinstance(strict_expected, str) and strict_expected not in WINNERS)
