"""TLS served by chatgate itself (`chatgate serve --ssl-certfile --ssl-keyfile`): the files are
checked before the server starts, so a missing or unreadable one is a start-up error that names
it, not a traceback from a worker process."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from chatgate.core.config import ConfigError


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certfile: str
    keyfile: str


def tls_files(certfile: str | None, keyfile: str | None) -> TlsFiles | None:
    """The certificate and key to serve with, checked by loading them as the server will; None
    when neither is given (plain HTTP)."""
    if not certfile and not keyfile:
        return None
    if not (certfile and keyfile):
        given, missing = ("certificate", "key") if certfile else ("key", "certificate")
        raise ConfigError(
            f"TLS needs both a certificate and its key: a {given} is set but no {missing} "
            "(--ssl-certfile and --ssl-keyfile, or CHATGATE_SSL_CERTFILE and CHATGATE_SSL_KEYFILE)"
        )
    for what, path in (("certificate", certfile), ("key", keyfile)):
        _readable(what, Path(path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"cannot serve TLS with certificate {certfile} and key {keyfile}: {exc.reason or exc}"
            " (both must be PEM, the key unencrypted and matching the certificate)"
        ) from None
    return TlsFiles(certfile=certfile, keyfile=keyfile)


def _readable(what: str, path: Path) -> None:
    try:
        with path.open("rb") as file:
            file.read(1)
    except FileNotFoundError:
        raise ConfigError(f"TLS {what} file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"TLS {what} file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"TLS {what} file {path} cannot be read: {exc.strerror}") from None
