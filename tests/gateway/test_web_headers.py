"""The page and its files come with headers that stop framing, sniffing and stale upgrades."""

from __future__ import annotations

from tests.conftest import Caller


async def test_page_and_static_files_carry_security_headers(alice: Caller) -> None:
    for path in ("/", "/static/app.js", "/static/vendor/purify.min.js"):
        response = await alice.http.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"
    assert (await alice.http.get("/static/nope.js")).status_code == 404
