"""``gateway serve --demo``: the README's first command works on its own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port

pytestmark = pytest.mark.e2e


def test_demo_serves_a_chat_completion_with_a_printed_key(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "serve", "--demo", "--port", str(port)],
            cwd=tmp_path,  # a directory with no policies/: the bundled ones are used
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
            assert proc.poll() is None, log.read_text()
        text = log.read_text()
        keys = re.findall(r"gk_[A-Za-z0-9_\-]+", text)
        assert len(keys) >= 6, text
        assert "curl" in text
        answered = 0
        for key in keys:
            response = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}", "x-forwarded-for": "8.8.8.8"},
                json={"model": "haiku-lite", "messages": [{"role": "user", "content": "Hello"}]},
            )
            assert response.status_code in (200, 403, 429), response.text
            if response.status_code == 200:
                answered += 1
                assert response.json()["choices"][0]["message"]["content"]
        assert answered >= 1
        # The curl line printed uses the first key and must work exactly as shown.
        first = keys[0]
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"authorization": f"Bearer {first}"},
            json={"model": "haiku-lite", "messages": [{"role": "user", "content": "Hello"}]},
        )
        assert response.status_code == 200, response.text

        # The Python line too, where only `python3` exists and the SDK is not a
        # dependency of the gateway: the banner says to install it, and uses python3.
        assert "pip install openai" in text, text
        [line] = [ln.strip() for ln in text.splitlines() if "from openai import" in ln]
        assert line.startswith('python3 -c "'), line
        bin_dir = Path(sys.executable).parent  # python3 here has the SDK (dev extras)
        run_env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"}
        ran = subprocess.run(["/bin/sh", "-c", line], env=run_env, capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
        assert ran.returncode == 0 and ran.stdout.strip(), ran.stdout + ran.stderr

        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        assert "python3 -m pip install openai" in readme and "pip install openai" in text

        # No list is loaded in the demo: said once, not once per demo customer.
        assert text.count("not screened") <= 1, text
        assert text.lower().count("no sanctions list") == 1, text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
