"""The TLS client keys of a config entry (`ca`, `cert`, `key`, `insecure`): what the probers'
and the notifiers' specs check the same way.

A neutral module: probers and notifiers both import it, and it imports neither of them
(DESIGN.md section 1).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_cert_and_key", "existing_file"]


def existing_file(value: Path | None) -> Path | None:
    """A `ca`, `cert` or `key` path, checked when the config loads rather than at the first
    connection: a missing file is a config error, not a failed check or a lost alert."""
    if value is not None and not value.is_file():
        raise ValueError(f"file not found: {value}")
    return value


def check_cert_and_key(cert: Path | None, key: Path | None) -> None:
    """A client certificate is no use without its key, nor a key without its certificate."""
    if (cert is None) != (key is None):
        raise ValueError("cert and key go together: set both or neither")
