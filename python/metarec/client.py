"""The client of ``metarec serve``: rank, feedback and reward over HTTP, from the standard
library only. Every error answer of the server (``{"error": {"code", "message"}}``)
becomes a :class:`ServerError`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Sequence


class ServerError(Exception):
    """An error answer of the server: the HTTP ``status``, the error ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Client:
    """A client of the server at ``url`` (``http://host:port``), sending ``api_key`` as a
    bearer token when given."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.api_key is not None:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                text = answer.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)["error"]
                code, message = err["code"], err["message"]
            except (ValueError, KeyError, TypeError):
                code, message = "error", raw.decode(errors="replace")
            raise ServerError(e.code, code, message) from None
        return json.loads(text) if text else None

    def rank(
        self,
        user: str,
        *,
        candidates: Sequence[Any] | None = None,
        slate_size: int | None = None,
        context: dict[str, Any] | None = None,
        event_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Asks for a slate for ``user``; ``candidates`` are item keys or ``{"key", "features",
        ...}`` objects. Other request fields (``exclude``, ``defer_activation``, ``explain``)
        pass through ``extra``."""
        body: dict[str, Any] = {"user": user, **extra}
        if candidates is not None:
            body["candidates"] = list(candidates)
        if slate_size is not None:
            body["slate_size"] = slate_size
        if context is not None:
            body["context"] = context
        if event_id is not None:
            body["event_id"] = event_id
        return self._call("POST", "/v1/rank", body)

    def feedback(
        self,
        event_id: str,
        kind: str,
        *,
        position: int | None = None,
        item: str | None = None,
        revenue: float | None = None,
    ) -> dict[str, Any]:
        """Records a ``kind`` (``click``, ``purchase``, ...) on the entry at ``position`` or of
        ``item`` of a ranked event; a purchase carries its ``revenue``."""
        body: dict[str, Any] = {"event_id": event_id, "kind": kind}
        if position is not None:
            body["position"] = position
        if item is not None:
            body["item"] = item
        if revenue is not None:
            body["revenue"] = revenue
        return self._call("POST", "/v1/feedback", body)

    def reward(self, event_id: str, value: float) -> dict[str, Any]:
        """Records a numeric reward for a whole event (the first one counts)."""
        return self._call("POST", "/v1/reward", {"event_id": event_id, "value": value})

    def activate(self, event_id: str) -> dict[str, Any]:
        """Activates an event ranked with ``defer_activation``."""
        return self._call("POST", f"/v1/events/{urllib.request.quote(event_id, safe='')}/activate")

    def health(self) -> dict[str, Any]:
        """The server's health answer."""
        return self._call("GET", "/healthz")
