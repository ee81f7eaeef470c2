"""Email notifier: SMTP with STARTTLS or TLS on connect, one multipart/alternative message
(a plain-text part and an HTML part) to every address in `to`.

EaseProbe's keys: `server` ("host:port"), `username`, `password` (or `password_file`), `to`
("a@x;b@y", or a YAML list), `from` (default, as in EaseProbe: `Notification <username>`).
Ours: `tls` (`starttls` | `ssl` | `none`), `ca` and `insecure` for the TLS context.

TLS is strict: the default is `ssl` (TLS on connect) on port 465 and `starttls` on every other
port, and a server that does not offer STARTTLS is an error, never a silent fall back to plain
text; `tls: none` must be written out. (EaseProbe's mail library upgrades only when the server
offers STARTTLS, so a stripped STARTTLS sends the password in the clear.)

The message: the subject is the first line of the `text` template, the plain part is the whole
`text` rendering, the HTML part the `email` template. A user's `template:`/`template_file:`
override for an event replaces the HTML part. Message-ID is derived from the notification id,
so a message resent after a retry carries the same id and mail clients can fold duplicates.

smtplib is blocking: each send runs in a worker thread (`asyncio.to_thread`), every socket
operation bounded by the notifier's timeout. SMTP replies become DeliveryErrors in
`_describe()`: 5xx (bad password, unknown recipient, message refused) are permanent, 4xx,
timeouts and connection errors temporary.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from probe import __version__
from probe.config.models import ConfigPath
from probe.notify.base import DeliveryError, Notification, Notifier, NotifierSpec, NotifyContext
from probe.notify.templates import TemplatedSpec
from probe.tlsconf import client_context

__all__ = ["EmailNotifier", "EmailSpec"]

log = logging.getLogger(__name__)

SSL_PORT = 465
# Characters of an SMTP reply quoted in an error.
_REPLY_CHARS = 200
_SUBJECT_CHARS = 200


def _split_addresses(value: Any) -> Any:
    """EaseProbe's `to: "a@x;b@y"` (";" or ","), or a YAML list of addresses."""
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[;,]", value) if part.strip()]
    return value


def _check_address(value: str, where: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{where}: an address cannot contain a line break")
    _name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or " " in address:
        raise ValueError(f'{where}: "{value[:80]}" is not an email address')
    return value


def _split_server(text: str) -> tuple[str, int]:
    """`host:port` or `[v6addr]:port` -> (host, port); ValueError with a config message."""
    raw = text.strip()
    match = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})|([^:\[\]/\s]+):(\d{1,5})", raw)
    if match is None:
        if raw and ":" not in raw:
            raise ValueError(f'missing port; write "{raw}:587" (STARTTLS) or "{raw}:465" (TLS)')
        raise ValueError(f'expected "host:port" (or "[v6addr]:port"), got "{raw[:80]}"')
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if match.group(1) is not None:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f'"{host}" is not an IPv6 address') from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return host, port


class EmailSpec(TemplatedSpec):
    """An `email:` entry."""

    kind: ClassVar[str] = "email"

    server: str
    username: str | None = None
    password: SecretStr | None = None
    to: Annotated[
        list[str],
        BeforeValidator(_split_addresses),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "description": 'EaseProbe\'s "a@x;b@y" ("," works too)'},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                ]
            }
        ),
    ] = Field(min_length=1)
    # `from` is a Python keyword: the field has another name, the key is EaseProbe's.
    sender: str | None = Field(default=None, alias="from")
    tls: Literal["starttls", "ssl", "none"] | None = None
    ca: ConfigPath | None = None
    insecure: bool = False

    @field_validator("server")
    @classmethod
    def _valid_server(cls, value: str) -> str:
        _split_server(value)
        return value.strip()

    @field_validator("to")
    @classmethod
    def _valid_to(cls, value: list[str]) -> list[str]:
        for index, address in enumerate(value):
            _check_address(address, f"to[{index}]")
        return value

    @field_validator("sender")
    @classmethod
    def _valid_sender(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value, "from")

    @field_validator("ca")
    @classmethod
    def _existing_ca(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EmailSpec:
        if self.password is not None and not self.username:
            raise ValueError("password needs a username")
        if self.sender is None and not (self.username and "@" in self.username):
            raise ValueError(
                "from is required (the sender address) unless username is an email address"
            )
        if self.tls_mode == "none" and (self.ca is not None or self.insecure):
            raise ValueError("ca and insecure are TLS settings; they do nothing with tls: none")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        return _split_server(self.server)

    @property
    def tls_mode(self) -> Literal["starttls", "ssl", "none"]:
        if self.tls is not None:
            return self.tls
        return "ssl" if self.host_port[1] == SSL_PORT else "starttls"

    @property
    def from_header(self) -> str:
        if self.sender is not None:
            return self.sender
        # EaseProbe's default sender: "Notification<username>".
        return formataddr(("Notification", self.username or ""))

    @property
    def envelope_from(self) -> str:
        return parseaddr(self.from_header)[1]

    @property
    def recipients(self) -> list[str]:
        return [address for _name, address in getaddresses(self.to)]

    def target(self) -> str:
        return f"email: {', '.join(self.recipients)} via {self.server}"


class EmailNotifier(Notifier[EmailSpec]):
    spec_type: ClassVar[type[NotifierSpec]] = EmailSpec
    format: ClassVar[str] = "email"

    def __init__(self, spec: EmailSpec, context: NotifyContext) -> None:
        super().__init__(spec, context)
        self._ssl_context: ssl.SSLContext | None = None

    def render(self, notification: Notification) -> dict[str, str]:
        """{subject, text, html, message_id}: everything of the message but the envelope."""
        event = notification.event
        templates = self.context.templates
        text = templates.render("text", event, notification)
        html = templates.render("email", event, notification, override=self.spec.override(event))
        domain = self.spec.envelope_from.rpartition("@")[2] or "probe.invalid"
        return {
            "subject": _subject(text, notification),
            "text": text,
            "html": html,
            "message_id": f"<probe.{notification.id}@{domain}>",
        }

    async def send(self, payload: Any) -> None:
        message = self._message(payload)
        try:
            async with asyncio.timeout(self.timeout):
                # Each socket operation in the thread is bounded by the same timeout, so an
                # abandoned thread ends soon after.
                await asyncio.to_thread(self._send_blocking, message)
        except DeliveryError:
            raise
        except TimeoutError:
            raise DeliveryError(
                f"timed out after {self.timeout:g}s talking to {self.spec.server}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _describe(exc, self.spec) from None

    def _message(self, payload: dict[str, str]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = payload["subject"]
        message["From"] = self.spec.from_header
        message["To"] = ", ".join(self.spec.to)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = payload["message_id"]
        # RFC 3834: machine-sent, so vacation auto-replies stay away.
        message["Auto-Submitted"] = "auto-generated"
        message["X-Mailer"] = f"probe/{__version__}"
        message.set_content(payload["text"])
        message.add_alternative(payload["html"], subtype="html")
        return message

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            spec = self.spec
            self._ssl_context = client_context(
                ca=spec.ca, cert=None, key=None, insecure=spec.insecure
            )
        return self._ssl_context

    def _send_blocking(self, message: EmailMessage) -> None:
        """The SMTP conversation (in a worker thread)."""
        spec = self.spec
        host, port = spec.host_port
        mode = spec.tls_mode
        # EHLO with this host's name, not smtplib's default getfqdn(): a reverse lookup
        # that can take seconds on a host with broken DNS.
        local = socket.gethostname() or "localhost"
        smtp: smtplib.SMTP
        if mode == "ssl":
            smtp = smtplib.SMTP_SSL(
                host, port, local_hostname=local, timeout=self.timeout, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(host, port, local_hostname=local, timeout=self.timeout)
        try:
            smtp.ehlo()
            if mode == "starttls":
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        f"{spec.server} does not offer STARTTLS; use tls: ssl if it takes TLS "
                        "on connect, or tls: none to send without encryption",
                        permanent=True,
                    )
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if spec.username:
                if not smtp.has_extn("auth"):
                    raise DeliveryError(
                        f"{spec.server} offers no authentication (AUTH) on this connection",
                        permanent=True,
                    )
                password = spec.password.get_secret_value() if spec.password else ""
                smtp.login(spec.username, password)
            refused = smtp.send_message(
                message, from_addr=spec.envelope_from, to_addrs=spec.recipients
            )
            if refused:
                # Delivered to the others: raising would make a retry send it to them again.
                log.warning(
                    "%s: the server refused some recipients: %s",
                    spec.name,
                    _refused_text(refused),
                )
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        finally:
            smtp.close()

    async def aclose(self) -> None:
        self._ssl_context = None


def _subject(text: str, notification: Notification) -> str:
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= _SUBJECT_CHARS else line[: _SUBJECT_CHARS - 3] + "..."
    what = notification.probe or "SLA report"
    return f"{what}: {notification.event.value}"


# --- the one place SMTP, TLS and OS errors become messages ----------------------------------


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
    shown = " ".join(raw.split())
    if len(shown) > _REPLY_CHARS:
        shown = shown[: _REPLY_CHARS - 3] + "..."
    return f"{code} {shown}".strip()


def _refused_text(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt} ({_reply(code, text)})" for rcpt, (code, text) in refused.items())


def _describe(exc: BaseException, spec: EmailSpec) -> DeliveryError:
    """A DeliveryError for what smtplib or the socket raised: 5xx permanent, the rest not."""
    server = spec.server
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        reply = _reply(exc.smtp_code, exc.smtp_error)
        return DeliveryError(
            f'authentication failed for user "{spec.username}": {reply}',
            permanent=exc.smtp_code >= 500,
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _text in exc.recipients.values()]
        return DeliveryError(
            f"every recipient was refused: {_refused_text(exc.recipients)}",
            permanent=all(code >= 500 for code in codes),
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return DeliveryError(
            f"sender {exc.sender} refused: {_reply(exc.smtp_code, exc.smtp_error)}",
            permanent=exc.smtp_code >= 500,
        )
    if isinstance(exc, smtplib.SMTPDataError):
        return DeliveryError(
            f"message refused: {_reply(exc.smtp_code, exc.smtp_error)}",
            permanent=exc.smtp_code >= 500,
        )
    if isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPHeloError):
        return DeliveryError(
            f"{server} refused the session: {_reply(exc.smtp_code, exc.smtp_error)}",
            permanent=exc.smtp_code >= 500,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return DeliveryError(
            f"{server} answered {_reply(exc.smtp_code, exc.smtp_error)}",
            permanent=exc.smtp_code >= 500,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"{server}: {exc}", permanent=True)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(f"{server} closed the connection")
    if isinstance(exc, ssl.SSLCertVerificationError):
        # Not permanent: a certificate that expired is renewed, and the alert still matters.
        reason = exc.verify_message or "certificate verification failed"
        return DeliveryError(
            f"TLS: {reason} for {server} (set ca: to the issuing CA's file, or insecure: true)"
        )
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or ""
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return DeliveryError(
                f"TLS: {server} did not answer with TLS; if it expects STARTTLS, set "
                "tls: starttls (the default on ports other than 465)",
                permanent=True,
            )
        if isinstance(exc, ssl.SSLEOFError) or not reason:
            return DeliveryError(f"TLS: {server} closed the connection during the handshake")
        return DeliveryError(f"TLS: {reason.lower().replace('_', ' ')} ({server})")
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"timed out talking to {server}")
    if isinstance(exc, socket.gaierror):
        return DeliveryError(f"cannot resolve {spec.host_port[0]}")
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return DeliveryError(f"connection refused by {server}")
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return DeliveryError(f"{server} is unreachable")
        if exc.errno == errno.ECONNRESET:
            return DeliveryError(f"{server} reset the connection")
        reason = exc.strerror or type(exc).__name__
        return DeliveryError(f"{server}: {reason[:1].lower()}{reason[1:]}")
    return DeliveryError(f"{server}: {type(exc).__name__}")  # pragma: no cover
