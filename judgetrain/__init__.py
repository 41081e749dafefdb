"""judgetrain: train, evaluate and ship LLM judges."""

from judgetrain.types import Answer, JudgeSample, Judgment, Label, ParseFailure, Verdict

__version__ = "0.1.0"

__all__ = ["Answer", "Judge", "JudgeSample", "Judgment", "Label", "ParseFailure", "Verdict", "__version__"]


def __getattr__(name: str):
    # Judge is imported on first use, so `import judgetrain` stays light (no torch).
    if name == "Judge":
        from judgetrain.judging.judge import Judge

        return Judge
    raise AttributeError(f"module 'judgetrain' has no attribute {name!r}")
