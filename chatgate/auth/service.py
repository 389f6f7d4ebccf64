"""Who is calling: the one local admin in mode `none`, or the `sub` of a verified JWT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from chatgate.auth.keys import ApiKeys, is_api_key
from chatgate.auth.schemas import USER_ID_RULE, is_valid_user_id
from chatgate.core.config import Settings
from chatgate.core.errors import BadRequest, Forbidden, Unauthorized
from chatgate.core.network import in_networks, networks

log = logging.getLogger("chatgate.auth")
ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}  # algorithm family -> JWK `kty`
JWKS_REFRESH_FLOOR = 30.0
VERIFIED_CACHE_LIMIT = 10_000  # seconds between refreshes caused by unknown key ids


@dataclass(frozen=True, slots=True)
class User:
    id: str
    is_admin: bool = False
    # Set when the caller used an API key: its id, and whether it is a service key (which may
    # act for end users it names).
    key_id: str | None = None
    is_service: bool = False

    @property
    def limit_key(self) -> str:
        """Whom request limits count against: the key when there is one, else the user."""
        return f"key:{self.key_id}" if self.key_id else f"user:{self.id}"


LOCAL_USER = User(id="local", is_admin=True)


def acting_user(caller: User, end_user: str | None) -> User:
    """The end user a call is made for: the caller, or whom a service key or an admin names
    (in `X-Chatgate-User`, or a body's `user_id`/`user`)."""
    if end_user is None:
        return caller
    if not is_valid_user_id(end_user):
        raise BadRequest(f"the end user's id must be {USER_ID_RULE}", code="invalid_end_user")
    if end_user == caller.id:
        return caller
    if not (caller.is_service or caller.is_admin):
        raise Forbidden(
            "only service keys and admins may act for another user",
            code="acting_for_user_forbidden",
        )
    # Still a service key's call: it may record what only trusted back ends may (POST /v1/history).
    return User(id=end_user, key_id=caller.key_id, is_service=caller.is_service)


def _is_admin(claims: dict[str, Any]) -> bool:
    roles = claims.get("roles")
    return claims.get("role") == "admin" or (isinstance(roles, list) and "admin" in roles)


class JwksKeys:
    """Signing keys from a JWKS URL, fetched with aiohttp so the event loop never blocks."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._document: list[Any] | None = None  # the keys as last fetched, to see a change
        self.generation = 0  # counts changes of the keys once they were first fetched
        # Never fetched: the first lookup fetches, even on a machine up for less than the floor.
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def close(self) -> None:
        if self._http:
            await self._http.close()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        key = self._pick(kid)
        if key is None and time.monotonic() - self._fetched_at > JWKS_REFRESH_FLOOR:
            async with self._lock:
                if (key := self._pick(kid)) is None:
                    await self._refresh()
                    key = self._pick(kid)
        if key is None:
            raise Unauthorized("the token's signing key is unknown", code="invalid_token")
        return key

    def _pick(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values()), None) if len(self._keys) == 1 else None

    async def refresh(self) -> None:
        """Fetches the keys again. When the key server cannot be reached, the keys known stay
        trusted."""
        async with self._lock:
            await self._refresh()

    async def _refresh(self) -> None:
        assert self._http is not None
        self._fetched_at = time.monotonic()
        try:
            async with self._http.get(self._url) as response:
                response.raise_for_status()
                document = await response.json(content_type=None)
            keyset = jwt.PyJWKSet.from_dict(document)
        except (aiohttp.ClientError, TimeoutError, jwt.PyJWTError, ValueError) as exc:
            log.warning("could not fetch JWKS from %s: %s", self._url, exc)
            return
        self._keys = {k.key_id or f"#{i}": k for i, k in enumerate(keyset.keys)}
        if self._document is not None and document.get("keys") != self._document:
            self.generation += 1
        self._document = document.get("keys")


class Authenticator:
    def __init__(self, settings: Settings, keys: ApiKeys) -> None:
        self.mode = settings.auth_mode
        self._keys = keys
        self._verified: dict[str, tuple[User, float]] = {}
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._jwks = JwksKeys(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        # Settings refuse jwt mode with neither an audience nor jwt_verify_audience=false.
        self._audience = settings.jwt_audience if settings.jwt_verify_audience else None
        self._issuer = settings.jwt_issuer
        self._refresh_seconds = settings.jwks_refresh_seconds
        self._refresher: asyncio.Task[None] | None = None
        self._keys_generation = 0  # of the JWKS that verified the tokens in `_verified`

    async def start(self) -> None:
        if self._jwks:
            await self._jwks.start()
            if self.mode == "jwt":
                self._refresher = asyncio.create_task(self._refresh_jwks(), name="jwks-refresh")

    async def close(self) -> None:
        if self._refresher:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._jwks:
            await self._jwks.close()

    async def _refresh_jwks(self) -> None:
        """Fetches the JWKS on a timer, so that a key the identity provider withdrew stops being
        trusted (`authenticate` then verifies remembered tokens again)."""
        assert self._jwks is not None
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self._jwks.refresh()
            except Exception:  # the timer must outlive any one failed refresh
                log.exception("JWKS refresh failed")

    async def authenticate(self, authorization: str | None, client_ip: str = "") -> User:
        if self.mode == "none":
            return LOCAL_USER
        if not authorization:
            raise Unauthorized("an Authorization: Bearer token is required", code="missing_token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "the Authorization header must be 'Bearer <token>'", code="invalid_token"
            )
        if is_api_key(token.strip()):
            return await self._key_user(token.strip(), client_ip)
        token = token.strip()
        generation = self._jwks.generation if self._jwks else 0
        if generation != self._keys_generation:
            self._verified.clear()  # some may have been signed with a key since withdrawn
            self._keys_generation = generation
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        claims = await self._verify(token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not is_valid_user_id(subject):
            raise Unauthorized(
                f"the token's 'sub' claim must be {USER_ID_RULE}", code="invalid_token"
            )
        user = User(id=subject, is_admin=_is_admin(claims))
        # A verified token stays valid until it expires: checking its signature again on every
        # request cost a tenth of the gateway's CPU per request.
        if len(self._verified) >= VERIFIED_CACHE_LIMIT:
            self._verified.clear()
        if generation == (self._jwks.generation if self._jwks else 0):
            self._verified[token] = (user, float(claims["exp"]))
        return user

    async def _key_user(self, secret: str, client_ip: str) -> User:
        key = await self._keys.identify(secret)
        if key is None:
            raise Unauthorized("the API key is not valid or was revoked", code="invalid_api_key")
        if key.allowed_cidrs and not in_networks(client_ip, networks(key.allowed_cidrs)):
            raise Forbidden(f"this key may not be used from {client_ip}", code="ip_not_allowed")
        if key.kind == "service":
            return User(id=f"service:{key.id}", key_id=key.id, is_service=True)
        return User(id=key.user_id or f"key:{key.id}", key_id=key.id)

    async def _verify(self, token: str) -> dict[str, Any]:
        options: jwt.types.Options = {
            "require": ["sub", "exp", *(["aud"] if self._audience else [])],
            "verify_aud": self._audience is not None,
        }
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm == "HS256" and self._secret:
                key: Any = self._secret
            elif algorithm in ASYMMETRIC and self._jwks:
                jwk = await self._jwks.key_for(header.get("kid"))
                # PyJWT raises TypeError, not a PyJWTError, for a key of the wrong kind.
                if jwk.key_type != KEY_TYPES[algorithm[:2]]:
                    raise Unauthorized(
                        f"the token's algorithm {algorithm} does not fit its signing key",
                        code="invalid_token",
                    )
                key = jwk.key
            else:
                raise Unauthorized(
                    f"tokens signed with {algorithm!r} are not accepted", code="invalid_token"
                )
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options=options,
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired", code="token_expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is not valid: {exc}", code="invalid_token") from None
