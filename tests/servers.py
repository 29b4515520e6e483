"""Real servers on loopback for the tests: an HTTP file server that logs what it was asked."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (path -> bytes) with ETags, answers 304 to a matching If-None-Match, 404 to
    anything else; `cut_short` paths announce their full length but send half. `log` holds
    (method, path, status) for every request, from any process."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_short: set[str] = set()
        self.drip: set[str] = set()  # paths sent one byte every 0.2 s
        self.authorization: str | None = None  # when set, the Authorization header every request needs
        self.failing: dict[str, int] = {}  # path -> the error status it answers (503: overloaded)
        self.log: list[tuple[str, str, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if server.authorization and self.headers.get("Authorization") != server.authorization:
                    return self._answer(401)
                if self.path in server.failing:
                    return self._answer(server.failing[self.path])
                body = server.files.get(self.path.split("?", 1)[0])
                if body is None:
                    return self._answer(404)
                etag = '"' + hashlib.md5(body).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    return self._answer(304, etag=etag)
                sent = body[: len(body) // 2] if self.path in server.cut_short else body
                self._answer(200, etag=etag, length=len(body), body=sent)

            def _answer(self, status: int, etag: str = "", length: int = 0, body: bytes = b"") -> None:
                server.log.append((self.command, self.path, status))
                self.send_response(status)
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.path not in server.drip:
                    self.wfile.write(body)
                    return
                try:
                    for index in range(len(body)):
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:  # the client gave up
                    pass

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def downloads(self, path: str) -> int:
        return sum(1 for method, p, status in self.log if p == path and status == 200)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class S3Server:
    """moto's S3-compatible server on loopback; boto3 reaches it through AWS_ENDPOINT_URL."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def close(self) -> None:
        self._server.stop()


class AppServer:
    """An ASGI app served by uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, app: object) -> None:
        import socket

        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline, "the app server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
