"""Test instruments standing in for the Kubernetes API where yardstick reads secrets before a run's steps start
(pipelines/kubernetes.py, check_secret_keys): `StandInCoreApi`, an object answering `read_namespaced_secret` as the
kubernetes client's CoreV1Api does, and `StandInApiServer`, an HTTP server answering the client's own requests for a
secret, so that a run's real Kubernetes client can talk to it. Both hold the secrets they are given, in plain text,
and record what they were asked; neither knows anything else of Kubernetes.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from kubernetes.client import V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

NOT_FOUND, FORBIDDEN = 404, 403


def _encoded(data: dict[str, str]) -> dict[str, str]:
    """A secret's data as the API returns it: each value base64-encoded."""
    return {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}


class StandInCoreApi:
    """`read_namespaced_secret` over `secrets` ({namespace: {name: {key: value}}}); `refuse` answers every read with
    that HTTP status instead (403: the service account may not read secrets)."""

    def __init__(self, secrets: dict[str, dict[str, dict[str, str]]], refuse: int | None = None) -> None:
        self.secrets = secrets
        self.refuse = refuse
        self.reads: list[tuple[str, str]] = []

    def read_namespaced_secret(self, name: str, namespace: str) -> V1Secret:
        self.reads.append((namespace, name))
        if self.refuse:
            raise ApiException(status=self.refuse, reason="Forbidden" if self.refuse == FORBIDDEN else "Error")
        data = self.secrets.get(namespace, {}).get(name)
        if data is None:
            raise ApiException(status=NOT_FOUND, reason="Not Found")
        return V1Secret(metadata=V1ObjectMeta(name=name, namespace=namespace), data=_encoded(data))


class StandInApiServer:
    """An HTTP server on 127.0.0.1 answering GET /api/v1/namespaces/NS/secrets/NAME from `secrets`, 404 for any other
    secret, and 501 for anything else; `requests` lists each (method, path) it was sent. Use it as a context manager;
    `kubeconfig(folder)` writes a kubeconfig pointing a client at it."""

    def __init__(self, secrets: dict[str, dict[str, dict[str, str]]]) -> None:
        self.secrets = secrets
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                server.requests.append(("GET", self.path))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
                    data = server.secrets.get(parts[3], {}).get(parts[5])
                    if data is not None:
                        self._answer(200, {"apiVersion": "v1", "kind": "Secret", "data": _encoded(data),
                                           "metadata": {"name": parts[5], "namespace": parts[3]}})
                        return
                    self._answer(NOT_FOUND, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                             "reason": "NotFound", "code": NOT_FOUND,
                                             "message": f'secrets "{parts[5]}" not found'})
                    return
                self._answer(501, {"kind": "Status", "status": "Failure", "message": "not stood in for"})

            def do_POST(self) -> None:  # noqa: N802
                server.requests.append(("POST", self.path))
                self._answer(501, {"kind": "Status", "status": "Failure", "message": "not stood in for"})

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig(self, folder: Path) -> str:
        path = folder / "kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "stand-in",
            "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
            "users": [{"name": "stand-in", "user": {"token": "stand-in"}}],
            "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "stand-in"}}],
        }))
        return str(path)

    def __enter__(self) -> StandInApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
