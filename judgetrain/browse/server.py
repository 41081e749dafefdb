"""The browser's HTTP server: the standard library's ``ThreadingHTTPServer`` serving the pages of
:mod:`judgetrain.browse.pages` (GET) and the playground form (POST).

It binds 127.0.0.1 unless told otherwise. Because the playground loads models and sends requests,
a POST is refused when its ``Origin`` names another site, so a page on the web cannot drive it
through the user's browser.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence
from urllib.parse import parse_qsl, urlsplit

from judgetrain.browse import pages
from judgetrain.browse.playground import JudgeChoice, Playground
from judgetrain.browse.store import MTBenchDir, Run

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 1024 * 1024


class BrowseServer(ThreadingHTTPServer):
    """Holds what the pages show: the runs, the MT-bench dirs and the playground."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], runs: Sequence[Run], mtbench: Sequence[MTBenchDir]):
        super().__init__(address, _Handler)
        self.runs = list(runs)
        self.mtbench = list(mtbench)
        self.playground = Playground()

    def server_close(self) -> None:
        super().server_close()
        self.playground.close()


def _single(query: str) -> dict[str, str]:
    return {k: v for k, v in parse_qsl(query, keep_blank_values=True)}


class _Handler(BaseHTTPRequestHandler):
    server: BrowseServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        logger.info("%s %s", self.address_string(), format % args)

    def _send_html(self, status: int, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        # The pages never run script; say so, so an injected <script> would not run either.
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlsplit(self.path)
        params = _single(url.query)
        server = self.server
        try:
            if url.path == "/":
                body = pages.index_page(server.runs, server.mtbench)
            elif url.path == "/items":
                body = pages.items_page(server.runs, params)
            elif url.path == "/item":
                run_index = int(params.get("run", "0"))
                if not 0 <= run_index < len(server.runs):
                    raise LookupError(f"no run number {run_index}")
                body = pages.item_page(server.runs[run_index], run_index, params.get("id", ""))
            elif url.path == "/compare":
                body = pages.compare_page(server.runs, params)
            elif url.path == "/mtbench":
                body = pages.mtbench_page(server.mtbench, params)
            elif url.path == "/playground":
                from judgetrain import formats

                body = pages.playground_page({}, formats.names())
            else:
                self._send_html(HTTPStatus.NOT_FOUND, pages.error_page(404, f"no page {url.path}"))
                return
        except (LookupError, ValueError) as err:
            self._send_html(HTTPStatus.BAD_REQUEST, pages.error_page(400, str(err)))
            return
        self._send_html(HTTPStatus.OK, body)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlsplit(self.path)
        if url.path != "/playground":
            self._send_html(HTTPStatus.NOT_FOUND, pages.error_page(404, f"no form at {url.path}"))
            return
        origin = self.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc != self.headers.get("Host"):
            self._send_html(HTTPStatus.FORBIDDEN, pages.error_page(403, f"form posted from another site ({origin})"))
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            self._send_html(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, pages.error_page(413, "the form is larger than 1 MiB"))
            return
        form = _single(self.rfile.read(length).decode("utf-8", errors="replace"))
        from judgetrain import formats

        judgment, error, card = None, None, None
        try:
            choice = JudgeChoice(kind=form.get("kind", "tiny"), target=form.get("target", "").strip(),
                                 model=form.get("model", "").strip(), api_key_env=form.get("api_key_env", "").strip(),
                                 card=form.get("card", "").strip())
            given_tokens = form.get("max_new_tokens", "").strip()
            try:
                # Empty: the judge card's budget (or the default of a judge without a card).
                max_new_tokens = int(given_tokens) if given_tokens else None
            except ValueError:
                raise ValueError(f"max new tokens must be a whole number, got {given_tokens!r}") from None
            judgment = self.server.playground.judge(form.get("question", ""), [form.get("answer_a", ""), form.get("answer_b", "")],
                                                    choice, form.get("format", ""), max_new_tokens)
            if choice.kind in ("export", "url"):
                card = self.server.playground.card_judge(choice).card
        except (ValueError, OSError) as err:
            error = str(err)
        self._send_html(HTTPStatus.OK, pages.playground_page(form, formats.names(), judgment, error, card))


def start_server(runs: Sequence[Run], mtbench: Sequence[MTBenchDir], host: str = "127.0.0.1",
                 port: int = 0) -> tuple[BrowseServer, threading.Thread]:
    """Start serving in a background thread; ``port=0`` picks a free port (read ``server.server_address``)."""
    server = BrowseServer((host, port), runs, mtbench)
    thread = threading.Thread(target=server.serve_forever, name="judgetrain-browse", daemon=True)
    thread.start()
    return server, thread
