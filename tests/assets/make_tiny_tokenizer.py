"""Rebuild judgetrain/resources/tiny_tokenizer: a real byte-level BPE tokenizer (2,048 tokens) with a
ChatML chat template, trained on PandaLM (Apache-2.0) and LLMBar (MIT) text. Tiny random models in
tests and `judgetrain quickstart --tiny` use it. Run: python tests/assets/make_tiny_tokenizer.py"""

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "judgetrain" / "resources" / "tiny_tokenizer"
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def corpus():
    for row in json.loads((DATA / "pandalm" / "testset-v1.json").read_text()):
        yield " ".join(str(row[k]) for k in ("instruction", "input", "response1", "response2"))
    for path in sorted((DATA / "llmbar" / "Dataset").rglob("dataset.json")):
        for row in json.loads(path.read_text()):
            yield " ".join(str(row[k]) for k in ("input", "output_1", "output_2"))
    # Judge-format vocabulary, so verdict markers tokenize compactly.
    for _ in range(50):
        yield "Rating: [[8]] [[A]] [[B]] [[C]] [RESULT] Response 1 Response 2 Tie Assistant 1 Assistant 2 final decision"


def main() -> None:
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2048, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<|pad|>", unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    OUT.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(OUT)
    print(f"wrote {OUT} ({len(fast)} tokens)")


if __name__ == "__main__":
    main()
