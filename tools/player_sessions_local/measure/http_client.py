"""One keep-alive HTTP client, as a game client holds one, and a closed loop of such clients.

The standard library's client: the load generator shares the two cores with everything it measures, so it
should cost little.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from player_sessions_local.local_auth import RequestSigner, Signer
from player_sessions_local.measure.stats import Latencies

Request = tuple[str, str, bytes | None]
"""Method, path with query, body."""
MakeRequest = Callable[[random.Random], Request]
Prove = Callable[[str, str, bytes | None], dict[str, str]]
"""The headers that prove who sends one request (method, path, body)."""


class HttpClient:
    """Signs every request as the studio's servers do (SigV4, the local access key): the benchmark, the soak
    and the loader's checks are the studio's own tools, and the served gateway checks them as deployed. The
    benchmark's privacy phase signs as administration (``signer``)."""

    def __init__(
        self, url: str, api_key: str | None = None, timeout: float = 30, signer: Signer = Signer.STUDIO
    ) -> None:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"no host in {url!r}")
        self._origin = f"{parts.scheme or 'http'}://{parts.netloc}"
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self._headers = {"x-api-key": api_key} if api_key else {}
        self._signer = RequestSigner(signer)

    def request(
        self, method: str, path: str, body: bytes | None = None, proof: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """``proof``: headers that prove who sends (a game client's ``Authorization: Bearer``) instead of the
        studio's signature."""
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if proof:
            headers.update(proof)
        else:
            headers = self._signer.headers(method, self._origin + path, body, headers)
        try:
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()  # the next request reconnects
            raise

    def get_json(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body[:300]!r}")
        return json.loads(body)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def drive(
    url_for: Callable[[int], str],
    make_request: MakeRequest,
    *,
    clients: int,
    seconds: float,
    seed: int,
    api_key: str | None = None,
    prove: Prove | None = None,
) -> Latencies:
    """``clients`` threads, started together, send requests back to back for ``seconds``, client ``n`` to
    ``url_for(n)``; an answer of 300 or more, or no answer, is an error. ``prove`` gives each request its
    caller's proof (made before the request is timed); without it, requests are signed as the studio."""
    measured = Latencies()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client_loop(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        mine = Latencies()
        with HttpClient(url_for(number), api_key, timeout=60) as client:
            start.wait()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                method, path, body = make_request(rng)
                proof = prove(method, path, body) if prove is not None else None
                began = time.perf_counter()
                try:
                    status, answer = client.request(method, path, body, proof)
                except (OSError, http.client.HTTPException) as error:
                    mine.add_error(f"{method} {path}: {type(error).__name__}: {error}")
                    continue
                elapsed = (time.perf_counter() - began) * 1000
                if status < 300:
                    mine.latencies_ms.append(elapsed)
                else:
                    mine.add_error(f"{method} {path}: HTTP {status} {answer[:200]!r}")
        with lock:
            measured.merge(mine)

    threads = [threading.Thread(target=client_loop, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    return measured
