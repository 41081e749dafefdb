"""An OpenAI-compatible chat-completions backend: the GPT-4 teacher, a ``vllm serve`` endpoint, or
``judgetrain serve``.

Requests run on a thread pool of ``max_concurrency`` workers sharing one ``httpx.Client``. A request
is retried with exponential backoff and full jitter (AWS "Exponential Backoff and Jitter") on 429,
5xx, timeouts, dropped connections and bodies that are not the JSON the API promises; a
``Retry-After`` header (seconds or an HTTP date) overrides the drawn delay. A request that still
fails returns ``Completion(error=...)``: one bad request never sinks a run.

``n`` > 1 samples (for API judges that drift) are requested with the API's ``n``, topped up by
further calls when a server ignores it; all texts come back in ``Completion.texts`` and the Judge
combines them (majority winner, median scores), since only the format can read them.

The API key is read from the named environment variable each time a request is built (without the
surrounding whitespace a key file or a CRLF .env line leaves), and it is scrubbed from every error
message: it never reaches a judgment, a log line, a cache or a summary.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Iterator, Mapping

from judgetrain.judging.backends.base import Backend, Completion, Request

logger = logging.getLogger(__name__)

PRICES_AS_OF = "2025-06"
DEFAULT_PRICE_TABLE: dict[str, tuple[float, float]] = {
    # model id prefix: (USD per 1M input tokens, USD per 1M output tokens), OpenAI list prices as of
    # PRICES_AS_OF. Prices change: pass your own ``price_table`` for anything that bills you.
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}
"""USD per 1M input / output tokens by model id. A dated snapshot (``gpt-4o-2024-08-06``) is priced
by the longest entry its id starts with."""

RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
MAX_TOP_LOGPROBS = 20  # the most OpenAI's chat API returns per position
REDACTED = "[redacted api key]"


def price_of(model: str, price_table: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens for ``model``: an exact entry, else the longest prefix entry."""
    if model in price_table:
        return tuple(price_table[model])  # type: ignore[return-value]
    prefixes = [name for name in price_table if model.startswith(name)]
    if not prefixes:
        return None
    return tuple(price_table[max(prefixes, key=len)])  # type: ignore[return-value]


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _RetryableError(Exception):
    """A failure worth another attempt; ``wait_seconds`` is the server's Retry-After, when it gave one."""

    def __init__(self, message: str, wait_seconds: float | None = None):
        super().__init__(message)
        self.wait_seconds = wait_seconds


class _FatalError(Exception):
    """A failure another attempt would repeat (bad request, wrong key, unknown model)."""


class OpenAIHTTPBackend(Backend):
    """Chat completions from an OpenAI-compatible server.

    Args:
        model: the model id sent in each request (and used for the price table).
        base_url: the API root, up to and including ``/v1``.
        api_key_env: the environment variable holding the key, read at request time; when it is unset
            no ``Authorization`` header is sent (local servers need none).
        max_concurrency: requests in flight at once.
        timeout_seconds: per-request timeout (connect, read, write and pool).
        max_retries: further attempts after the first for a retryable failure.
        backoff_base_seconds / backoff_max_seconds: the delay before retry ``k`` is drawn uniformly
            from ``[0, min(max, base * 2**k)]``; a Retry-After header is honoured up to ``max``.
        price_table: USD per 1M (input, output) tokens by model id; None uses ``DEFAULT_PRICE_TABLE``.
        max_cost_usd: stop sending requests once this much has been spent (requests in flight finish);
            later requests return ``Completion(error="cost cap ...")``.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout_seconds: float = 60,
        max_retries: int = 6,
        backoff_base_seconds: float = 1.0,
        backoff_max_seconds: float = 60,
        price_table: Mapping[str, tuple[float, float]] | None = None,
        max_cost_usd: float | None = None,
    ):
        if not model:
            raise ValueError("model: give the model id the server expects, e.g. gpt-4o")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if backoff_base_seconds < 0 or backoff_max_seconds < 0:
            raise ValueError("backoff_base_seconds and backoff_max_seconds must be >= 0")
        if max_cost_usd is not None and max_cost_usd < 0:
            raise ValueError(f"max_cost_usd must be >= 0, got {max_cost_usd}")
        try:
            import httpx
        except ImportError as err:  # pragma: no cover - httpx is installed wherever the api extra is
            raise ImportError("the OpenAI-compatible backend needs httpx: pip install 'judgetrain[api]'") from err
        self._httpx = httpx
        self.model_id = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env or None
        self.max_concurrency = max_concurrency
        self.timeout_seconds = float(timeout_seconds)
        self.max_retries = max_retries
        self.backoff_base_seconds = float(backoff_base_seconds)
        self.backoff_max_seconds = float(backoff_max_seconds)
        self.price_table = dict(DEFAULT_PRICE_TABLE if price_table is None else price_table)
        self.prices_per_million = price_of(model, self.price_table)
        if self.prices_per_million is None:
            logger.warning("no price for model %r in the price table: cost will be reported as unknown", model)
        self.max_cost_usd = max_cost_usd
        # Running totals over real HTTP calls (cache hits never reach this object).
        self.num_http_calls = 0
        self.num_retries = 0
        self.total_tokens_in = 0
        self.total_tokens_out = 0
        self.total_cost_usd = 0.0
        self._totals_lock = threading.Lock()
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_seconds),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="judgetrain-openai")

    def __repr__(self) -> str:
        # The key's value is never part of the repr; only the variable's name is.
        return (f"OpenAIHTTPBackend(model={self.model_id!r}, base_url={self.base_url!r}, "
                f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})")

    def settings(self) -> dict[str, Any]:
        """The backend's settings for judgments and summaries (no key, only the variable's name)."""
        return {"backend": self.name, "model": self.model_id, "base_url": self.base_url,
                "api_key_env": self.api_key_env, "max_concurrency": self.max_concurrency,
                "timeout_seconds": self.timeout_seconds, "max_retries": self.max_retries,
                "prices_usd_per_1m_tokens": self.prices_per_million,
                "max_cost_usd": self.max_cost_usd}

    def usage(self) -> dict[str, Any]:
        """Totals so far over real calls: calls, retries, tokens in/out, cost in USD (None when unpriced)."""
        with self._totals_lock:
            return {"http_calls": self.num_http_calls, "retries": self.num_retries,
                    "tokens_in": self.total_tokens_in, "tokens_out": self.total_tokens_out,
                    "cost_usd": round(self.total_cost_usd, 6) if self.prices_per_million is not None else None}

    @property
    def budget_exhausted(self) -> bool:
        with self._totals_lock:
            return self.max_cost_usd is not None and self.total_cost_usd >= self.max_cost_usd

    # --- the contract ------------------------------------------------------------------------
    def generate(self, requests: list[Request]) -> list[Completion]:
        """Answer every request, in order, ``max_concurrency`` at a time. Never raises for one request."""
        return list(self._pool.map(self._complete, requests))

    def generate_iter(self, requests: list[Request]) -> Iterator[tuple[int, Completion]]:
        """Yield ``(index, completion)`` as each HTTP call finishes, so a cache in front stores it at once.
        When the consumer stops early (a kill, a cost cap), requests not yet sent are cancelled; the
        at most ``max_concurrency`` already in flight finish and are dropped."""
        futures = {self._pool.submit(self._complete, request): index for index, request in enumerate(requests)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    # --- one request -------------------------------------------------------------------------
    def _complete(self, request: Request) -> Completion:
        started = time.perf_counter()
        try:
            completion = self._complete_or_raise(request)
        except _FatalError as err:
            completion = Completion(error=self._scrub(str(err)))
        except Exception as err:  # noqa: BLE001 - any failure of one request becomes its recorded error
            completion = Completion(error=self._scrub(f"{type(err).__name__}: {err}"))
        completion.latency_seconds = time.perf_counter() - started
        return completion

    def _complete_or_raise(self, request: Request) -> Completion:
        decoding = request.decoding
        texts: list[str] = []
        tokens_in = tokens_out = 0
        cost_usd: float | None = 0.0 if self.prices_per_million is not None else None
        first_choice: dict[str, Any] | None = None
        # Some servers ignore ``n`` and return one choice: ask again for the rest. A bounded number of
        # rounds, so a server that returns no choices at all cannot loop us forever.
        for _ in range(decoding.n):
            if len(texts) >= decoding.n:
                break
            if self.budget_exhausted:
                raise _FatalError(f"cost cap of {self.max_cost_usd} USD reached before this request was sent")
            body = self._request_body(request, decoding.n - len(texts))
            response = self._post_with_retries(body)
            choices = response["choices"]
            for choice in choices[: decoding.n - len(texts)]:
                texts.append(choice["message"]["content"])
                if first_choice is None:
                    first_choice = choice
            usage = response.get("usage") or {}
            call_in, call_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            tokens_in += call_in
            tokens_out += call_out
            call_cost = self._cost(call_in, call_out)
            with self._totals_lock:
                self.total_tokens_in += call_in
                self.total_tokens_out += call_out
                if call_cost is not None:
                    self.total_cost_usd += call_cost
            if cost_usd is not None and call_cost is not None:
                cost_usd += call_cost
        if len(texts) < decoding.n:
            raise _FatalError(f"the server returned {len(texts)} of the {decoding.n} samples asked for")
        verdict_logprobs = None
        if decoding.logprobs and request.verdict_options and first_choice is not None:
            verdict_logprobs = verdict_logprobs_of(first_choice.get("logprobs"), request.verdict_options)
        return Completion(text=texts[0], texts=texts, tokens_in=tokens_in, tokens_out=tokens_out,
                          verdict_logprobs=verdict_logprobs, cost_usd=cost_usd)

    def _request_body(self, request: Request, num_samples: int) -> dict[str, Any]:
        decoding = request.decoding
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages],
            "max_tokens": decoding.max_new_tokens,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p,
        }
        if num_samples > 1:
            body["n"] = num_samples
        if decoding.stop:
            body["stop"] = list(decoding.stop)[:4]  # OpenAI accepts at most 4 stop sequences
        if decoding.seed is not None:
            body["seed"] = decoding.seed
        if decoding.logprobs and request.verdict_options:
            body["logprobs"] = True
            body["top_logprobs"] = MAX_TOP_LOGPROBS
        return body

    def _raw_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        # Surrounding whitespace is never part of a key; a key read from a file or a CRLF .env keeps a
        # trailing newline / CR, which makes an illegal header value (that httpx quotes in its error).
        key = (self._raw_key() or "").strip()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post_with_retries(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            try:
                return self._post_once(url, body)
            except _RetryableError as err:
                if attempt == self.max_retries:
                    raise _FatalError(f"gave up after {attempt + 1} attempts; last: {err}") from None
                drawn = random.uniform(0, min(self.backoff_max_seconds, self.backoff_base_seconds * 2**attempt))
                delay = drawn if err.wait_seconds is None else min(err.wait_seconds, self.backoff_max_seconds)
                with self._totals_lock:
                    self.num_retries += 1
                logger.warning("%s: attempt %d failed (%s); retrying in %.2f s", self.model_id, attempt + 1,
                               self._scrub(str(err)), delay)
                time.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _post_once(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        httpx = self._httpx
        with self._totals_lock:
            self.num_http_calls += 1
        try:
            response = self._client.post(url, json=body, headers=self._headers())
        except httpx.TimeoutException as err:
            raise _RetryableError(f"timed out after {self.timeout_seconds} s ({type(err).__name__})") from None
        except httpx.TransportError as err:
            # Connection refused / reset / dropped mid-response: the server may come back.
            raise _RetryableError(f"connection error: {type(err).__name__}: {err}") from None
        if response.status_code != 200:
            detail = response.text[:300]
            message = f"HTTP {response.status_code}: {detail}"
            if response.status_code in RETRYABLE_STATUS:
                raise _RetryableError(message, retry_after_seconds(response.headers.get("retry-after")))
            if response.status_code in (401, 403) and self.api_key_env:
                message += f" (check the key in ${self.api_key_env})"
            raise _FatalError(message)
        try:
            data = response.json()
            choices = data["choices"]
            if not isinstance(choices, list) or not all(isinstance(c["message"]["content"], str) for c in choices):
                raise TypeError("choices[].message.content must be strings")
        except (ValueError, KeyError, TypeError) as err:
            # A truncated or garbled body is usually a proxy hiccup; another attempt tends to work.
            raise _RetryableError(f"malformed response body ({type(err).__name__}: {err}): {response.text[:200]!r}") from None
        return data

    def _cost(self, tokens_in: int, tokens_out: int) -> float | None:
        if self.prices_per_million is None:
            return None
        price_in, price_out = self.prices_per_million
        return (tokens_in * price_in + tokens_out * price_out) / 1_000_000

    def _scrub(self, text: str) -> str:
        """``text`` with the API key's value (if any) replaced, so no error message can carry it: as set,
        stripped (as sent), and as the escaped bytes an HTTP library quotes for an illegal header value."""
        key = self._raw_key()
        if not key:
            return text
        forms = {key, key.strip(), repr(key.strip().encode("utf-8"))[2:-1]} - {""}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, REDACTED)
        return text


def verdict_logprobs_of(logprobs: Mapping[str, Any] | None, verdict_options: Mapping[str, str]) -> dict[str, float] | None:
    """Verdict -> log-probability read from an OpenAI ``logprobs`` object at the first non-blank
    generated token: for each verdict, the best ``top_logprobs`` entry whose token (stripped) equals
    the verdict's option text (stripped). Verdicts absent from the top list are left out."""
    if not logprobs or not logprobs.get("content"):
        return None
    for position in logprobs["content"]:
        if str(position.get("token", "")).strip():
            break
    else:
        return None
    candidates = list(position.get("top_logprobs") or []) + [{"token": position.get("token"), "logprob": position.get("logprob")}]
    found: dict[str, float] = {}
    for verdict, option_text in verdict_options.items():
        wanted = option_text.strip()
        for entry in candidates:
            if entry.get("logprob") is None or str(entry.get("token", "")).strip() != wanted:
                continue
            found[verdict] = max(found.get(verdict, float("-inf")), float(entry["logprob"]))
    return found or None


__all__ = ["OpenAIHTTPBackend", "DEFAULT_PRICE_TABLE", "PRICES_AS_OF", "price_of", "retry_after_seconds",
           "verdict_logprobs_of"]
