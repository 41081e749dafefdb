"""The browser's HTTP server: the standard library's ``ThreadingHTTPServer`` serving the pages of
:mod:`judgetrain.browse.pages` (GET) and the playground form (POST).

It binds 127.0.0.1 unless told otherwise. The playground loads models and sends requests (with an
API key, when started with one), so no web page the user visits may drive it through the browser:

- every request's ``Host`` must be one of this server's own names (127.0.0.1, localhost, [::1] or
  the ``--host`` it was started with, each with its port), so a DNS-rebound name is refused (421);
- a POST whose ``Origin`` is another site, or ``null`` (a sandboxed frame, a ``data:`` page), is
  refused (403);
- every POST must carry this process's form token, rendered into the playground form only, which
  another site cannot read (403 otherwise);
- the key's variable and the base URLs a judge may be reached at are fixed at launch (see
  :class:`~judgetrain.browse.playground.Playground`); a form naming a variable, or a URL outside
  the list, is refused (403).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence
from urllib.parse import parse_qsl, urlsplit

from judgetrain.browse import pages
from judgetrain.browse.playground import REMOTE_KINDS, JudgeChoice, Playground, RefusedChoice
from judgetrain.browse.store import MTBenchDir, Run

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 1024 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
FORM_TOKEN_FIELD = "form_token"
PLAYGROUND_FIELDS = frozenset({FORM_TOKEN_FIELD, "question", "answer_a", "answer_b", "kind", "export_dir", "base_url",
                               "model", "card", "format", "max_new_tokens"})
"""The fields the playground form posts; any other is refused, so a request cannot smuggle a setting in."""


def _host_name(host: str) -> str:
    """``host`` as it appears in a Host header (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def accepted_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values a server bound to ``host``:``port`` answers (lower case): the loopback
    names and ``host`` itself, each with the port. Any other name could be an attacker's domain
    pointed at this machine (DNS rebinding), so it is not answered."""
    names = {*LOOPBACK_NAMES}
    if host:
        names.add(_host_name(host).lower())
    values = {f"{name}:{port}" for name in names}
    if port == 80:  # a browser leaves the default port out of Host and Origin
        values |= names
    return frozenset(values)


class BrowseServer(ThreadingHTTPServer):
    """Holds what the pages show: the runs, the MT-bench dirs and the playground; and what a request
    must match: the accepted Host values and origins, and this process's form token."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], runs: Sequence[Run], mtbench: Sequence[MTBenchDir],
                 allowed_base_urls: Sequence[str] = (), api_key_env: str | None = None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        # Built before binding: a bad --allow-base-url is reported without opening a socket.
        playground = Playground(allowed_base_urls, api_key_env)
        super().__init__(address, _Handler)
        self.runs = list(runs)
        self.mtbench = list(mtbench)
        self.playground = playground
        # The port is known only once bound (port 0 picks one).
        self.accepted_hosts = accepted_hosts(address[0], self.server_address[1])
        self.accepted_origins = frozenset(f"http://{h}" for h in self.accepted_hosts)
        self.form_token = secrets.token_urlsafe(32)

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
        # The pages never run script; say so, so an injected <script> would not run either; and no
        # other site may frame them (a framed form could be clicked by a user who cannot see it).
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                                                    "form-action 'self'; frame-ancestors 'none'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        self._send_html(status, pages.error_page(status.value, message))

    def _host_accepted(self) -> bool:
        """Whether the Host header names this server; refuses the request (421) when it does not."""
        host = (self.headers.get("Host") or "").strip().lower()
        if host in self.server.accepted_hosts:
            return True
        self._refuse(HTTPStatus.MISDIRECTED_REQUEST,
                     f"this server does not answer to the host {host or '(none)'!r}; open it as "
                     f"{' or '.join(sorted('http://' + h for h in self.server.accepted_hosts))} "
                     "(or start judgetrain browse with --host set to the name you browse to)")
        return False

    def _playground_page(self, status: int, form: dict[str, str], judgment: Any = None, error: str | None = None,
                         card: Any = None) -> None:
        from judgetrain import formats

        self._send_html(status, pages.playground_page(form, formats.names(), judgment, error, card,
                                                      form_token=self.server.form_token,
                                                      allowed_base_urls=self.server.playground.allowed_base_urls,
                                                      api_key_env=self.server.playground.api_key_env))

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if not self._host_accepted():
            return
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
                self._playground_page(HTTPStatus.OK, {})
                return
            else:
                self._send_html(HTTPStatus.NOT_FOUND, pages.error_page(404, f"no page {url.path}"))
                return
        except (LookupError, ValueError) as err:
            self._send_html(HTTPStatus.BAD_REQUEST, pages.error_page(400, str(err)))
            return
        self._send_html(HTTPStatus.OK, body)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        if not self._host_accepted():
            return
        url = urlsplit(self.path)
        if url.path != "/playground":
            self._refuse(HTTPStatus.NOT_FOUND, f"no form at {url.path}")
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() not in self.server.accepted_origins:
            # "null" is what a sandboxed frame or a data: page sends: a page of no known site.
            self._refuse(HTTPStatus.FORBIDDEN, f"form posted from another site (Origin {origin}); "
                                               "submit the form on this server's own /playground page")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._refuse(HTTPStatus.BAD_REQUEST, f"Content-Length {self.headers.get('Content-Length')!r} is not a number")
            return
        if not 0 <= length <= MAX_FORM_BYTES:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the form is larger than 1 MiB")
            return
        form = _single(self.rfile.read(length).decode("utf-8", errors="replace"))
        given_token = form.pop(FORM_TOKEN_FIELD, "")
        if not hmac.compare_digest(given_token.encode("utf-8"), self.server.form_token.encode("utf-8")):
            self._refuse(HTTPStatus.FORBIDDEN, "the form's token is missing or wrong (it changes when judgetrain browse "
                                               "restarts): open /playground again and submit the form from there")
            return
        if "api_key_env" in form:
            key_env = self.server.playground.api_key_env
            sent = f"this one sends ${key_env}" if key_env else "this one sends no key"
            self._playground_page(HTTPStatus.FORBIDDEN, form, error=(
                "the form cannot name the API key's environment variable: it is fixed when judgetrain browse starts "
                f"(--api-key-env NAME; {sent})"))
            return
        unknown = sorted(set(form) - PLAYGROUND_FIELDS)
        if unknown:
            self._playground_page(HTTPStatus.BAD_REQUEST, form, error=(
                f"unknown form field(s) {', '.join(map(repr, unknown))}; the playground form has "
                f"{', '.join(sorted(PLAYGROUND_FIELDS - {FORM_TOKEN_FIELD}))}"))
            return
        kind = form.get("kind", "tiny")
        target = form.get("base_url" if kind in REMOTE_KINDS else "export_dir", "").strip()
        choice = JudgeChoice(kind=kind, target=target, model=form.get("model", "").strip(), card=form.get("card", "").strip())
        try:
            self.server.playground.check_choice(choice)
        except RefusedChoice as err:
            self._playground_page(HTTPStatus.FORBIDDEN, form, error=str(err))
            return

        judgment, error, card = None, None, None
        try:
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
        self._playground_page(HTTPStatus.OK, form, judgment, error, card)


def start_server(runs: Sequence[Run], mtbench: Sequence[MTBenchDir], host: str = "127.0.0.1",
                 port: int = 0, *, allowed_base_urls: Sequence[str] = (),
                 api_key_env: str | None = None) -> tuple[BrowseServer, threading.Thread]:
    """Start serving in a background thread; ``port=0`` picks a free port (read ``server.server_address``).

    ``allowed_base_urls`` are the only servers the playground may send a request to, and
    ``api_key_env`` the variable whose key it sends them (None: no key)."""
    server = BrowseServer((host, port), runs, mtbench, allowed_base_urls, api_key_env)
    thread = threading.Thread(target=server.serve_forever, name="judgetrain-browse", daemon=True)
    thread.start()
    return server, thread
