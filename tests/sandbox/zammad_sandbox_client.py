"""HTTP helper for the Zammad sandbox tests (a module, not conftest, so tests can import it)."""

from __future__ import annotations

from typing import Any

import requests

from connectors.sandbox.zammad import ZammadSandbox


class Client:
    """A tiny JSON client bound to one token, so tests read like the HTTP exchange."""

    def __init__(self, sandbox: ZammadSandbox, token: str | None) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token token={token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.sandbox.api_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)
