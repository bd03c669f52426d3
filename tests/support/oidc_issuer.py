"""A real OpenID issuer on a loopback port: discovery document and JWKS,
served from a thread so that synchronous end-to-end tests can use it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey


class LocalIssuer:
    def __init__(self, audience: str) -> None:
        self.audience = audience
        self.keys: list[RSAKey] = [self.new_key("k1")]
        self.cache_control: str | None = None
        """Sent as the JWKS response's ``Cache-Control`` when set."""
        self.jwks_hits = 0
        self.extra: list[Any] = []
        """JWKS entries published after the keys (malformed ones, say)."""
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body: dict[str, Any] = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_hits += 1
                    keys = [k.as_dict(private=False) for k in issuer.keys]
                    body = {"keys": keys + issuer.extra}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if self.path == "/jwks" and issuer.cache_control is not None:
                    self.send_header("cache-control", issuer.cache_control)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def new_key(kid: str) -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": kid})

    def rotate(self, kid: str) -> RSAKey:
        """Replace the signing key; the old one is no longer published."""
        key = self.new_key(kid)
        self.keys = [key]
        return key

    def token(self, subject: str, key: RSAKey | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + 300,
        }
        body.update(claims)
        return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
