"""The email notifier against a real SMTP server: aiosmtpd's SMTP protocol served on loopback
from the test's own event loop (the notifier's smtplib runs in a worker thread), with STARTTLS
or TLS on connect from a trustme certificate, and AUTH checked by an authenticator.

aiosmtpd's threaded Controller needs a fixed port; the same SMTP class served with
`loop.create_server(..., port=0)` takes whatever port is free.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import ValidationError

from probe.notify import load_notifier_class
from probe.notify.base import DeliveryError, Event, Notification, NotifyContext
from probe.notify.email import EmailNotifier, EmailSpec
from probe.notify.templates import Templates
from tests.conftest import server_ssl_context
from tests.notify.samples import notification

USER = "alice@example.test"
PASSWORD = "s3cret-Pa55word"


@dataclass
class Mailbox:
    """An SMTP handler that records what it accepts; replies can be set per recipient."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    envelopes: list[Envelope] = field(default_factory=list)
    tls_sessions: list[bool] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.envelopes.append(envelope)
        self.tls_sessions.append(session.ssl is not None)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == USER.encode()
            and data.password == PASSWORD.encode()
        )
        if ok:
            self.logins.append(USER)
        # handled=False: aiosmtpd then answers a failure with 535 itself.
        return AuthResult(success=ok, handled=False)

    def message(self, index: int = -1) -> EmailMessage:
        envelope = self.envelopes[index]
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SMTPServer:
    port: int
    mailbox: Mailbox

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


StartSMTP = Callable[..., Awaitable[SMTPServer]]


@pytest.fixture
async def smtp_server() -> AsyncIterator[StartSMTP]:
    """`await smtp_server(ssl_context=None, **SMTP keyword arguments) -> SMTPServer`."""
    servers: list[asyncio.Server] = []

    async def start(*, ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> SMTPServer:
        loop = asyncio.get_running_loop()
        mailbox = Mailbox()
        if kwargs.pop("auth", False):
            kwargs["authenticator"] = mailbox.authenticate

        def factory() -> SMTP:
            # hostname given: aiosmtpd would otherwise ask socket.getfqdn() (a DNS lookup).
            return SMTP(mailbox, hostname="mail.test", loop=loop, **kwargs)

        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        return SMTPServer(server.sockets[0].getsockname()[1], mailbox)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def smtp_leaf(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def tls_context(smtp_leaf: trustme.LeafCert) -> ssl.SSLContext:
    return server_ssl_context(smtp_leaf)


def make(server: str, **keys: Any) -> EmailNotifier:
    raw: dict[str, Any] = {"name": "mail", "server": server, "to": "ops@example.test", **keys}
    raw.setdefault("from", "probe@example.test")
    raw.setdefault("timeout", "5s")
    spec = EmailSpec.model_validate(raw)
    context = NotifyContext(http=None, templates=Templates(), timeout=10.0, dry=False)
    return EmailNotifier(spec, context)


async def deliver(notifier: EmailNotifier, note: Notification | None = None) -> None:
    await notifier.send(notifier.render(note or notification()))


# --- delivery -------------------------------------------------------------------------------


def test_registry_points_at_the_notifier():
    assert load_notifier_class("email") is EmailNotifier


async def test_starttls_and_auth_deliver_a_text_and_html_message(
    smtp_server, tls_context, tls_ca_file
):
    server = await smtp_server(
        tls_context=tls_context, require_starttls=True, auth=True, auth_required=True
    )
    notifier = make(
        server.address,
        username=USER,
        password=PASSWORD,
        ca=str(tls_ca_file),
        to="ops@example.test; dev@example.test",
    )
    assert notifier.spec.tls_mode == "starttls"
    note = notification()
    await deliver(notifier, note)

    mailbox = server.mailbox
    assert mailbox.logins == [USER]
    assert mailbox.tls_sessions == [True]
    envelope = mailbox.envelopes[0]
    assert envelope.mail_from == "probe@example.test"
    assert envelope.rcpt_tos == ["ops@example.test", "dev@example.test"]
    message = mailbox.message()
    assert message["Subject"] == "[DOWN] api is down"
    assert message["From"] == "probe@example.test"
    assert message["To"] == "ops@example.test, dev@example.test"
    assert message["Message-ID"] == f"<probe.{note.id}@example.test>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "https://api.example.test/health" in text.get_content()
    assert "status 503 not in 200-399" in html.get_content()
    assert "<html" in html.get_content()


async def test_tls_on_connect(smtp_server, tls_context, tls_ca_file):
    # aiosmtpd counts only STARTTLS as TLS for AUTH; this connection is TLS from the start.
    server = await smtp_server(ssl_context=tls_context, auth=True, auth_require_tls=False)
    notifier = make(
        server.address, tls="ssl", username=USER, password=PASSWORD, ca=str(tls_ca_file)
    )
    await deliver(notifier, notification(Event.RECOVERY, duration=330.0))
    assert server.mailbox.logins == [USER]
    message = server.mailbox.message()
    assert message["Subject"] == "[RECOVERED] api is up again"
    assert "5m 30s" in message.get_body(("plain",)).get_content()


async def test_plain_text_needs_tls_none_written_out(smtp_server):
    server = await smtp_server(auth=True, auth_require_tls=False)
    strict = make(server.address, username=USER, password=PASSWORD)
    with pytest.raises(DeliveryError) as caught:
        await deliver(strict)
    assert caught.value.permanent
    assert "does not offer STARTTLS" in caught.value.message
    assert server.mailbox.envelopes == [] and server.mailbox.logins == []

    plain = make(server.address, username=USER, password=PASSWORD, tls="none")
    await deliver(plain)
    assert server.mailbox.logins == [USER]
    assert server.mailbox.tls_sessions == [False]


async def test_no_auth_without_username(smtp_server):
    server = await smtp_server()
    await deliver(make(server.address, tls="none"))
    assert len(server.mailbox.envelopes) == 1


async def test_from_defaults_to_easeprobes_notification_sender(smtp_server):
    server = await smtp_server(auth=True, auth_require_tls=False)
    spec = validate(
        server=server.address, tls="none", to="ops@example.test", username=USER, password=PASSWORD
    )
    assert spec.sender is None
    context = NotifyContext(http=None, templates=Templates(), timeout=5.0, dry=False)
    await deliver(EmailNotifier(spec, context))
    # EaseProbe sends as "Notification<username>".
    assert server.mailbox.envelopes[0].mail_from == USER
    assert server.mailbox.message()["From"] == f"Notification <{USER}>"


async def test_template_override_replaces_the_html_part(smtp_server):
    server = await smtp_server()
    notifier = make(
        server.address,
        tls="none",
        template={"down": "<p>custom: {{ probe }} / {{ message }}</p>"},
    )
    await deliver(notifier, notification(message="<b>boom</b>"))
    message = server.mailbox.message()
    html = message.get_body(("html",)).get_content()
    assert "custom: api / &lt;b&gt;boom&lt;/b&gt;" in html  # autoescaped: data stays data
    assert "[DOWN] api is down" in message.get_body(("plain",)).get_content()


def test_message_id_is_stable_across_renders():
    notifier = make("127.0.0.1:25", tls="none")
    note = notification()
    assert notifier.render(note)["message_id"] == notifier.render(note)["message_id"]
    assert notifier.render(note)["subject"] == "[DOWN] api is down"


# --- refusals -------------------------------------------------------------------------------


async def test_wrong_password_is_permanent_and_names_the_user(
    smtp_server, tls_context, tls_ca_file
):
    server = await smtp_server(tls_context=tls_context, auth=True)
    notifier = make(server.address, username=USER, password="wrong-password", ca=str(tls_ca_file))
    with pytest.raises(DeliveryError) as caught:
        await deliver(notifier)
    error = caught.value
    assert error.permanent
    assert f'authentication failed for user "{USER}"' in error.message
    assert "535" in error.message
    assert "wrong-password" not in error.message and PASSWORD not in error.message
    assert server.mailbox.envelopes == []


async def test_auth_not_offered_on_a_plain_connection(smtp_server):
    # aiosmtpd offers AUTH only over TLS by default, as real submission servers do.
    server = await smtp_server(auth=True)
    notifier = make(server.address, tls="none", username=USER, password=PASSWORD)
    with pytest.raises(DeliveryError) as caught:
        await deliver(notifier)
    assert caught.value.permanent
    assert "offers no authentication" in caught.value.message


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("550 5.1.1 <ops@example.test>: no such user", True), ("450 4.2.1 mailbox busy", False)],
)
async def test_recipient_refused(smtp_server, reply, permanent):
    server = await smtp_server()
    server.mailbox.rcpt_replies["ops@example.test"] = reply
    with pytest.raises(DeliveryError) as caught:
        await deliver(make(server.address, tls="none"))
    assert caught.value.permanent is permanent
    assert "ops@example.test" in caught.value.message
    assert reply.split()[0] in caught.value.message


async def test_one_recipient_refused_still_delivers_to_the_others(smtp_server, caplog):
    server = await smtp_server()
    server.mailbox.rcpt_replies["gone@example.test"] = "550 5.1.1 no such user"
    notifier = make(server.address, tls="none", to=["ops@example.test", "gone@example.test"])
    with caplog.at_level(logging.WARNING, logger="probe.notify.email"):
        await deliver(notifier)  # no error: a retry would send it to ops@ again
    assert server.mailbox.envelopes[0].rcpt_tos == ["ops@example.test"]
    assert "gone@example.test" in caplog.text and "550" in caplog.text


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("451 4.3.0 try again later", False), ("554 5.6.0 message refused", True)],
)
async def test_message_refused(smtp_server, reply, permanent):
    server = await smtp_server()
    server.mailbox.data_reply = reply
    with pytest.raises(DeliveryError) as caught:
        await deliver(make(server.address, tls="none"))
    assert caught.value.permanent is permanent
    assert caught.value.message.startswith("message refused: " + reply.split()[0])


async def test_connection_refused_is_temporary(closed_port):
    with pytest.raises(DeliveryError) as caught:
        await deliver(make(f"127.0.0.1:{closed_port}", tls="none"))
    assert not caught.value.permanent
    assert caught.value.message == f"connection refused by 127.0.0.1:{closed_port}"


async def test_server_that_never_greets_times_out(raw_server):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await raw_server(silent)
    notifier = make(server.address, tls="none", timeout="300ms")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        await deliver(notifier)
    assert time.monotonic() - started < 2.0
    assert not caught.value.permanent
    assert "timed out" in caught.value.message


async def test_untrusted_certificate(smtp_server, tls_context):
    server = await smtp_server(tls_context=tls_context)
    with pytest.raises(DeliveryError) as caught:
        await deliver(make(server.address))  # no ca: the system's roots do not know ours
    assert not caught.value.permanent  # a certificate gets fixed; the alert still matters
    assert caught.value.message.startswith("TLS: ")
    assert "set ca:" in caught.value.message
    assert server.mailbox.envelopes == []

    await deliver(make(server.address, insecure=True))
    assert server.mailbox.tls_sessions == [True]


async def test_tls_on_connect_against_a_starttls_port(smtp_server, tls_context, tls_ca_file):
    server = await smtp_server(tls_context=tls_context)
    with pytest.raises(DeliveryError) as caught:
        await deliver(make(server.address, tls="ssl", ca=str(tls_ca_file), timeout="2s"))
    assert caught.value.permanent
    assert "did not answer with TLS" in caught.value.message


# --- config ---------------------------------------------------------------------------------


def validate(**raw: Any) -> EmailSpec:
    return EmailSpec.model_validate({"name": "mail", **raw})


def test_easeprobe_keys_load():
    spec = validate(
        server="smtp.example.test:465",
        username="probe@example.test",
        password="pw",
        to="a@example.test;b@example.test, c@example.test",
        **{"from": "Probe <probe@example.test>"},
    )
    assert spec.to == ["a@example.test", "b@example.test", "c@example.test"]
    assert spec.tls_mode == "ssl"  # port 465: TLS on connect
    assert (
        validate(server="smtp.example.test:587", to="a@x.test", **{"from": "p@x.test"}).tls_mode
        == "starttls"
    )
    assert spec.envelope_from == "probe@example.test"
    target = spec.target()
    assert (
        target == "email: a@example.test, b@example.test, c@example.test via smtp.example.test:465"
    )
    assert "pw" not in repr(spec)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"server": "smtp.example.test", "to": "a@x.test", "from": "p@x.test"}, "missing port"),
        (
            {"server": "smtp.example.test:99999", "to": "a@x.test", "from": "p@x.test"},
            "out of range",
        ),
        ({"server": "h:25", "to": "not-an-address", "from": "p@x.test"}, "is not an email address"),
        ({"server": "h:25", "to": [], "from": "p@x.test"}, "at least 1 item"),
        ({"server": "h:25", "to": "a@x.test"}, "from is required"),
        ({"server": "h:25", "to": "a@x.test", "username": "bob"}, "from is required"),
        (
            {"server": "h:25", "to": "a@x.test", "from": "p@x.test", "password": "x"},
            "needs a username",
        ),
        ({"server": "h:25", "to": "a@x.test\r\nBcc: x@y.test", "from": "p@x.test"}, "line break"),
        ({"server": "h:25", "to": "a@x.test", "from": "p@x.test", "tls": "maybe"}, "tls"),
        (
            {
                "server": "h:25",
                "to": "a@x.test",
                "from": "p@x.test",
                "tls": "none",
                "insecure": True,
            },
            "do nothing with tls: none",
        ),
        (
            {"server": "h:25", "to": "a@x.test", "from": "p@x.test", "ca": "/nonexistent.pem"},
            "file not found",
        ),
    ],
)
def test_config_errors(raw, expected):
    with pytest.raises(ValidationError) as caught:
        validate(**raw)
    assert expected in str(caught.value)


def test_password_never_shown_in_errors():
    with pytest.raises(ValidationError) as caught:
        validate(
            server="h:25",
            to="nope",
            password="hunter2-secret",
            username="u",
            **{"from": "p@x.test"},
        )
    assert "hunter2-secret" not in str(caught.value)


def test_ca_path_is_relative_to_the_config(tmp_path: Path, tls_ca_file: Path):
    (tmp_path / "ca.pem").write_bytes(tls_ca_file.read_bytes())
    spec = EmailSpec.model_validate(
        {"name": "m", "server": "h:587", "to": "a@x.test", "from": "p@x.test", "ca": "ca.pem"},
        context={"base_dir": tmp_path},
    )
    assert spec.ca == tmp_path / "ca.pem"
