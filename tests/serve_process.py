"""A real `policyeval serve` process on 127.0.0.1 for the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

TOKEN = "api-t0ken"
WANDB_TOKEN = "wandb-t0ken"
SECRET = "webhook-s3cret"


class ServeProcess:
    def __init__(self, database_url: str, **env: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "POLICYEVAL_API_TOKENS": TOKEN,
            "POLICYEVAL_WANDB_TOKEN": WANDB_TOKEN,
            "POLICYEVAL_WEBHOOK_SECRET": SECRET,
            **env,
        }
        self.database_url = database_url
        self.start()

    def start(self) -> None:
        command = [sys.executable, "-m", "pytest_policyeval", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--database", self.database_url], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"policyeval serve exited: {self.process.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("policyeval serve did not answer within 30 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
