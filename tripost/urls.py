"""A server's address as tripost records it: in cache keys (teachers) and in
the student info of log records (a remote engine), so it must never hold a
credential."""

from __future__ import annotations


def endpoint_id(url: str) -> str:
    """The part of a base URL that says which server answers: scheme, host,
    port and path, lower-cased host, no trailing slash. Credentials a URL may
    carry (`https://user:secret@host`), its query and fragment are dropped:
    the result goes into cache keys and must hold no secret."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


__all__ = ["endpoint_id"]
