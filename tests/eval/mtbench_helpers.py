"""Shared pieces of the MT-bench tests: a real tiny-model backend that counts (and can cut off) calls."""

from __future__ import annotations

from judgetrain.judging.backends.transformers_backend import TransformersBackend


class CountingBackend(TransformersBackend):
    """The real transformers backend on the tiny model, counting the requests it answers and, when
    ``stop_after`` is set, raising KeyboardInterrupt once that many were answered (a killed run)."""

    def __init__(self, *args, stop_after: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_requests = 0
        self.requests = []
        self.stop_after = stop_after

    def generate_iter(self, requests):
        for index, completion in super().generate_iter(requests):
            if self.stop_after is not None and self.num_requests >= self.stop_after:
                raise KeyboardInterrupt("run killed")
            self.num_requests += 1
            self.requests.append(requests[index])
            yield index, completion
