"""The judgment-token loss equals the model's own causal-LM loss, in value and in gradients, while its
log-softmax sees only the supervised rows."""

import copy

import torch

from judgetrain.data.tokenize import IGNORE_INDEX
from judgetrain.train.loss import judgment_token_loss


def _batch(vocab_size: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, vocab_size, (3, 17), generator=generator)
    labels = input_ids.clone()
    labels[:, :11] = IGNORE_INDEX  # the prompt
    labels[2, 14:] = IGNORE_INDEX  # padding of a shorter row
    return {"input_ids": input_ids, "labels": labels}


def _loss_and_grads(model, batch, loss_fn):
    model.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def test_equals_the_models_loss_and_gradients(tiny_model):
    model = copy.deepcopy(tiny_model).train()
    batch = _batch(model.config.vocab_size)
    num_items = (batch["labels"][:, 1:] != IGNORE_INDEX).sum() * 2  # as if a second micro-batch followed

    def own(m, b):
        return m(**b, num_items_in_batch=num_items).loss

    def ours(m, b):
        outputs = m(input_ids=b["input_ids"])
        return judgment_token_loss(outputs, b["labels"], num_items_in_batch=num_items)

    expected_loss, expected_grads = _loss_and_grads(model, batch, own)
    loss, grads = _loss_and_grads(model, batch, ours)
    torch.testing.assert_close(loss, expected_loss)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-6, rtol=1e-4)


def test_without_a_count_divides_by_its_own_supervised_tokens(tiny_model):
    batch = _batch(tiny_model.config.vocab_size)
    with torch.no_grad():
        outputs = tiny_model(input_ids=batch["input_ids"])
        mean = judgment_token_loss(outputs, batch["labels"])
        total = judgment_token_loss(outputs, batch["labels"], num_items_in_batch=1)
        expected = tiny_model(**batch).loss
    supervised = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    torch.testing.assert_close(mean, expected)
    torch.testing.assert_close(total, expected * supervised)
