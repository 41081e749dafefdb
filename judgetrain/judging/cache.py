"""An on-disk result cache: a killed judging run resumes without repeating a finished call, and a
repeated run costs nothing.

Each completion is stored under the sha256 of everything that decides it: the exact chat messages,
the backend name, the model id, the decoding settings and the verdict options asked for
(:func:`request_key`). The store is one sqlite file in WAL mode: every ``put`` is its own committed
transaction, so what was committed survives a kill, and several threads (the HTTP backend's
workers) or processes may write to it at once. Errors are never cached: a request that failed is
asked again on the next run.

:class:`CachingBackend` wraps any backend, so every backend (transformers, vLLM, HTTP) gets caching
and resume the same way: it answers hits from the store and sends only the misses to the backend,
storing each completion the moment the backend yields it (``Backend.generate_iter``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from judgetrain.judging.backends.base import Backend, Completion, Request

CACHE_ENV = "JUDGETRAIN_RESULT_CACHE"
"""Environment variable naming the default result-cache file (used when a CLI is given no --cache)."""

CACHE_FILE_NAME = "judge-cache.sqlite"
"""The file name of a judging run's result cache when none is given (``judgetrain judge``, ``judgetrain eval``)."""

_SCHEMA_VERSION = 1
"""Bumped when the key recipe or the stored completion layout changes, so old rows are not misread."""

DEFAULT_CHUNK_SIZE = 16
"""Requests sent per ``generate`` call to a backend that cannot yield results one by one: a kill loses
at most this many finished calls."""


def request_key(request: Request, backend_name: str, model_id: str) -> str:
    """The cache key of ``request`` sent to ``model_id`` through ``backend_name``: a sha256 hex digest
    of the canonical JSON of (messages, backend, model, decoding, verdict options)."""
    payload = {
        "schema": _SCHEMA_VERSION,
        "messages": [dict(m) for m in request.messages],
        "backend": backend_name,
        "model": model_id,
        "decoding": request.decoding.to_dict(),
        "verdict_options": request.verdict_options,
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _completion_to_json(completion: Completion) -> str:
    data = dataclasses.asdict(completion)
    data.pop("cached", None)  # a property of how this run got it, not of the completion
    return json.dumps(data, ensure_ascii=False)


def _completion_from_json(text: str) -> Completion:
    data = json.loads(text)
    known = {f.name for f in dataclasses.fields(Completion)}
    return Completion(**{k: v for k, v in data.items() if k in known})


class ResultCache:
    """A sqlite (WAL) store of completions keyed by :func:`request_key`.

    ``path`` is the cache file; its parent dir is created. Safe to share between threads.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"--cache {self.path} is a directory; give a file path such as {self.path / CACHE_FILE_NAME}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: autocommit, each put is its own durable transaction.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed put is on disk before put returns (a killed run keeps it).
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, completion TEXT NOT NULL)")
        except sqlite3.DatabaseError as err:
            raise ValueError(f"result cache {self.path} cannot be opened as a sqlite file ({err}); remove it or pick another --cache path") from None

    def get(self, key: str) -> Completion | None:
        """The stored completion under ``key`` (marked ``cached=True``), or None."""
        with self._lock:
            row = self._db.execute("SELECT completion FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        completion = _completion_from_json(row[0])
        completion.cached = True
        return completion

    def put(self, key: str, completion: Completion) -> None:
        """Store ``completion`` under ``key``. A completion with an error is not stored (it is retried)."""
        if completion.error is not None:
            return
        text = _completion_to_json(completion)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO completions (key, completion) VALUES (?, ?)", (key, text))

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM completions WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "ResultCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_cache_path(cache: str | os.PathLike[str] | None, *, no_cache: bool, default: Path) -> Path | None:
    """The result-cache file a command's run uses, from its ``--cache`` and ``--no-cache`` flags:
    ``cache`` when given, else ``default``; None (no cache) with ``no_cache``. Giving both is a
    ValueError: the run would silently ignore one of them."""
    if no_cache:
        if cache is not None:
            raise ValueError(f"--cache {cache} and --no-cache contradict each other; drop one of them")
        return None
    return Path(cache) if cache is not None else default


def _yields_one_by_one(backend: Backend) -> bool:
    return type(backend).generate_iter is not Backend.generate_iter


class CachingBackend(Backend):
    """Any backend with a result cache in front of it.

    Hits are answered from ``cache``; misses go to ``backend`` and each completion is stored as soon as
    the backend yields it. A backend without its own ``generate_iter`` gets the misses in chunks of
    ``chunk_size`` (default: the backend's ``preferred_chunk_size``, else 16) so a kill loses at most
    one chunk. ``name`` and ``model_id`` are the wrapped
    backend's, so judgments record the real backend.
    """

    def __init__(self, backend: Backend, cache: ResultCache | str | os.PathLike[str], *, chunk_size: int | None = None):
        # A backend may say how many requests it wants per call (vLLM: many).
        chunk_size = chunk_size or getattr(backend, "preferred_chunk_size", None) or DEFAULT_CHUNK_SIZE
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.backend = backend
        # A cache opened here is closed here; one passed in belongs to the caller.
        self._owns_cache = not isinstance(cache, ResultCache)
        self.cache = cache if isinstance(cache, ResultCache) else ResultCache(cache)
        self.chunk_size = chunk_size
        self.name = backend.name
        self.model_id = backend.model_id
        self.num_hits = 0
        self.num_misses = 0

    def key(self, request: Request) -> str:
        return request_key(request, self.backend.name, self.backend.model_id)

    def generate(self, requests: list[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        for index, completion in self.generate_iter(requests):
            out[index] = completion
        assert all(c is not None for c in out)
        return out  # type: ignore[return-value]

    def generate_iter(self, requests: list[Request]) -> Iterator[tuple[int, Completion]]:
        keys = [self.key(r) for r in requests]
        missing: list[int] = []
        # Identical requests in one run are sent once; the copies get the same completion.
        first_of_key: dict[str, int] = {}
        copies: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is not None:
                self.num_hits += 1
                yield index, hit
            elif key in first_of_key:
                copies.setdefault(first_of_key[key], []).append(index)
            else:
                first_of_key[key] = index
                missing.append(index)
        self.num_misses += len(missing)
        if not missing:
            return
        chunks = [missing] if _yields_one_by_one(self.backend) else [
            missing[i:i + self.chunk_size] for i in range(0, len(missing), self.chunk_size)
        ]
        for chunk in chunks:
            for position, completion in self.backend.generate_iter([requests[i] for i in chunk]):
                index = chunk[position]
                self.cache.put(keys[index], completion)
                yield index, completion
                for copy_index in copies.get(index, ()):
                    yield copy_index, dataclasses.replace(completion)

    def close(self) -> None:
        self.backend.close()
        if self._owns_cache:
            self.cache.close()


def cached_generate(backend: Backend, requests: list[Request], cache: ResultCache) -> list[Completion]:
    """``backend.generate(requests)`` through ``cache``: finished calls are never repeated."""
    wrapper = CachingBackend(backend, cache)
    return wrapper.generate(requests)
