"""The JWKS is fetched again on a timer: a key the identity provider withdraws stops being
trusted within a refresh period, tokens chatgate had already verified with it included."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth.test_jwt import KeyServer, get_sessions, public_jwk, signed
from tests.conftest import Double, assert_error, remote_only_settings
from tests.doubles.server import serve_app
from tests.runner import run_chatgate


async def test_a_withdrawn_key_stops_being_trusted(tmp_path: Path, openai_double: Double) -> None:
    old_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = KeyServer(keys=[public_jwk(old_key, "old", "RS256")])
    with serve_app(server.app()) as keys_url:
        settings = remote_only_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'chatgate.db'}",
            openai_double.url,
            jwt_secret=None,
            jwt_jwks_url=f"{keys_url}/.well-known/jwks.json",
            jwks_refresh_seconds=1,
        )
        with run_chatgate(settings) as url:
            old = f"Bearer {signed(old_key, 'RS256', 'old', 'rotating-user')}"
            assert (await get_sessions(url, old)).status_code == 200
            server.keys = [public_jwk(new_key, "new", "RS256")]  # the provider rotates
            deadline = time.monotonic() + 10
            while (await get_sessions(url, old)).status_code == 200:
                assert time.monotonic() < deadline, "the withdrawn key is still trusted"
                await asyncio.sleep(0.2)
            assert_error(await get_sessions(url, old), 401, "invalid_token")
            new = f"Bearer {signed(new_key, 'RS256', 'new', 'rotating-user')}"
            assert (await get_sessions(url, new)).status_code == 200
            # On a timer, not on every request: a few fetches over these seconds.
            assert 2 <= server.fetches <= 15
