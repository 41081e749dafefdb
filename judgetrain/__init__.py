"""judgetrain: train, evaluate and ship LLM judges."""

from judgetrain.types import Answer, JudgeSample, Judgment, Label, ParseFailure, Verdict

__version__ = "0.1.0"

__all__ = ["Answer", "JudgeSample", "Judgment", "Label", "ParseFailure", "Verdict", "__version__"]
