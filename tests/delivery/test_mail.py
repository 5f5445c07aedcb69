"""Invoice e-mail against a real SMTP server (aiosmtpd on 127.0.0.1), plain, AUTH, TLS."""

from __future__ import annotations

import email
import email.policy
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import snapshot_samples as samples
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from addon.delivery.mail import DeliveryResult, SmtpSettings, build_message, send_invoice
from addon.invoicing.rendered import RenderedFile

PASSWORD = "s3cr3t-Pa55word"
PDF = RenderedFile("RE-2026-00042.pdf", "application/pdf", b"%PDF-1.7\n% test pdf\n%%EOF\n")
XML = RenderedFile("RE-2026-00042.xml", "application/xml", "<Invoice>Müller</Invoice>".encode())


@dataclass
class Recorder:
    """aiosmtpd handler: stores what arrives; optional scripted replies per hook."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_replies: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        ok = auth_data.login == b"billing" and auth_data.password == PASSWORD.encode()
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def received(self) -> EmailMessage:
        assert len(self.messages) == 1
        message = email.message_from_bytes(self.messages[0][2], policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command line tool."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to create the test certificate", pytrace=False)
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """Factory: start an aiosmtpd server with the given options, stop it after the test."""
    started: list[Controller] = []

    def start(recorder: Recorder, **options: Any) -> int:
        port = free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return port

    yield start
    for controller in started:
        controller.stop()


def settings(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": "plain",
                              "sender": "rechnung@nordlicht-it.de", "timeout": 5.0}
    values.update(overrides)
    return SmtpSettings(**values)


def no_sleep(seconds: float) -> None:
    raise AssertionError("a successful or permanent delivery must not wait")


def assert_invoice_attachments(message: EmailMessage) -> None:
    parts = {part.get_filename(): part for part in message.iter_attachments()}
    assert set(parts) == {"RE-2026-00042.pdf", "RE-2026-00042.xml"}
    assert parts["RE-2026-00042.pdf"].get_content_type() == "application/pdf"
    assert parts["RE-2026-00042.pdf"].get_content() == PDF.content
    assert parts["RE-2026-00042.xml"].get_content_type() == "application/xml"
    assert parts["RE-2026-00042.xml"].get_payload(decode=True) == XML.content


def test_plain_delivery_in_german(smtp_server: Any) -> None:
    recorder = Recorder()
    port = smtp_server(recorder)
    result = send_invoice(samples.invoice(), [PDF, XML], settings(port),
                          "rechnungen@mueller-soehne.de", sleep=no_sleep)
    assert (result.status, result.attempts, result.error) == ("sent", 1, None)
    sender, recipients, _ = recorder.messages[0]
    assert (sender, recipients) == ("rechnung@nordlicht-it.de", ["rechnungen@mueller-soehne.de"])
    message = recorder.received()
    assert message["Subject"] == "Rechnung RE-2026-00042 – Nordlicht IT-Service GmbH"
    assert message["From"] == "Nordlicht IT-Service GmbH <rechnung@nordlicht-it.de>"
    assert message["Reply-To"] == "buchhaltung@nordlicht-it.de"
    assert message["Message-ID"] == result.message_id
    body = message.get_body(("plain",)).get_content()
    assert "Sehr geehrte Damen und Herren," in body
    assert "Rechnung RE-2026-00042 vom 30.11.2026 über 1.544,14" in body
    assert "bis zum 14.12.2026" in body
    assert "RE-2026-00042.xml" in body
    assert_invoice_attachments(message)


def test_english_invoice_gets_english_mail(smtp_server: Any) -> None:
    recorder = Recorder()
    port = smtp_server(recorder)
    result = send_invoice(samples.english_invoice(), [PDF, XML], settings(port),
                          ["a@example.com", "b@example.com"], sleep=no_sleep)
    assert result.status == "sent"
    assert recorder.messages[0][1] == ["a@example.com", "b@example.com"]
    message = recorder.received()
    assert message["Subject"] == "Invoice RE-2026-00044 – Nordlicht IT-Service GmbH"
    body = message.get_body(("plain",)).get_content()
    assert body.startswith("Dear Sir or Madam,")
    assert "€1,544.14" in body and "Kind regards" in body


def test_cancellation_mail_names_the_cancelled_invoice() -> None:
    message = build_message(samples.cancellation(), [PDF], "rechnung@nordlicht-it.de", "x@y.de")
    assert message["Subject"].startswith("Stornorechnung RE-2026-00050")
    assert "zur Rechnung RE-2026-00042" in message.get_body(("plain",)).get_content()


# aiosmtpd warns per connection (in its server thread) when AUTH is allowed without TLS.
PLAIN_AUTH_WARNING = "ignore:Requiring AUTH while not requiring TLS:UserWarning"


@pytest.mark.filterwarnings(PLAIN_AUTH_WARNING)
def test_auth_over_plain_connection(smtp_server: Any) -> None:
    recorder = Recorder()
    port = smtp_server(recorder, authenticator=recorder.authenticate, auth_required=True,
                       auth_require_tls=False)
    result = send_invoice(samples.invoice(), [PDF, XML],
                          settings(port, user="billing", password=PASSWORD),
                          "rechnungen@mueller-soehne.de", sleep=no_sleep)
    assert result.status == "sent"
    assert recorder.logins == ["billing"]
    assert_invoice_attachments(recorder.received())


def test_starttls_with_auth_and_self_signed_certificate(
    smtp_server: Any, certificate: tuple[Path, Path]
) -> None:
    recorder = Recorder()
    port = smtp_server(recorder, tls_context=server_context(certificate), require_starttls=True,
                       authenticator=recorder.authenticate, auth_required=True)
    smtp = settings(port, security="starttls", user="billing", password=PASSWORD,
                    ca_file=str(certificate[0]))
    result = send_invoice(samples.invoice(), [PDF, XML], smtp, "rechnungen@mueller-soehne.de",
                          sleep=no_sleep)
    assert result.status == "sent", result.error
    assert recorder.logins == ["billing"]
    assert_invoice_attachments(recorder.received())


def test_starttls_refuses_an_untrusted_certificate(
    smtp_server: Any, certificate: tuple[Path, Path]
) -> None:
    recorder = Recorder()
    port = smtp_server(recorder, tls_context=server_context(certificate), require_starttls=True)
    result = send_invoice(samples.invoice(), [PDF], settings(port, security="starttls"),
                          "x@example.com", retries=2, sleep=no_sleep)
    assert (result.status, result.attempts) == ("failed", 1)
    assert "CERTIFICATE_VERIFY_FAILED" in (result.error or "")
    assert recorder.messages == []


def test_implicit_tls(smtp_server: Any, certificate: tuple[Path, Path]) -> None:
    recorder = Recorder()
    port = smtp_server(recorder, ssl_context=server_context(certificate))
    smtp = settings(port, security="ssl", ca_file=str(certificate[0]))
    result = send_invoice(samples.invoice(), [PDF, XML], smtp, "rechnungen@mueller-soehne.de",
                          sleep=no_sleep)
    assert result.status == "sent", result.error
    assert_invoice_attachments(recorder.received())


def test_connection_refused_is_retried_then_failed(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    smtp = settings(free_port(), user="billing", password=PASSWORD)
    with caplog.at_level(logging.DEBUG):
        result = send_invoice(samples.invoice(), [PDF], smtp, "x@example.com", retries=2,
                              sleep=waits.append, backoff=1.5)
    assert (result.status, result.attempts) == ("failed", 3)
    assert "Connection refused" in (result.error or "")
    assert waits == [1.5, 3.0]
    assert PASSWORD not in caplog.text and PASSWORD not in repr(smtp)
    assert caplog.text.count("failed") == 3


def test_permanent_5xx_fails_at_once_with_the_server_text(smtp_server: Any) -> None:
    recorder = Recorder(rcpt_reply="550 5.1.1 Mailbox unknown")
    port = smtp_server(recorder)
    result = send_invoice(samples.invoice(), [PDF], settings(port), "nobody@example.com",
                          retries=3, sleep=no_sleep)
    assert (result.status, result.attempts) == ("failed", 1)
    assert "550" in (result.error or "") and "Mailbox unknown" in (result.error or "")


def test_temporary_4xx_is_retried_until_accepted(smtp_server: Any) -> None:
    recorder = Recorder(data_replies=["451 4.3.0 Try again later"])
    port = smtp_server(recorder)
    waits: list[float] = []
    result = send_invoice(samples.invoice(), [PDF, XML], settings(port), "x@example.com",
                          retries=2, sleep=waits.append, backoff=2.0)
    assert (result.status, result.attempts) == ("sent", 2)
    assert waits == [2.0]
    assert_invoice_attachments(recorder.received())


@pytest.mark.filterwarnings(PLAIN_AUTH_WARNING)
def test_wrong_password_fails_without_revealing_it(
    smtp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    port = smtp_server(recorder, authenticator=recorder.authenticate, auth_required=True,
                       auth_require_tls=False)
    wrong = "wr0ng-" + PASSWORD
    with caplog.at_level(logging.DEBUG):
        result = send_invoice(samples.invoice(), [PDF], settings(port, user="billing",
                              password=wrong), "x@example.com", retries=2, sleep=no_sleep)
    assert (result.status, result.attempts) == ("failed", 1)
    assert "535" in (result.error or "")
    assert wrong not in (result.error or "") and wrong not in caplog.text
    assert recorder.messages == []


def test_server_without_starttls_is_a_permanent_failure(smtp_server: Any) -> None:
    port = smtp_server(Recorder())
    result = send_invoice(samples.invoice(), [PDF], settings(port, security="starttls"),
                          "x@example.com", retries=2, sleep=no_sleep)
    assert (result.status, result.attempts) == ("failed", 1)
    assert "STARTTLS" in (result.error or "")


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="security"):
        SmtpSettings("h", 25, security="tls", sender="a@b.de")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sender"):
        SmtpSettings("h", 25, sender="nobody")
    assert isinstance(DeliveryResult("sent", 1), DeliveryResult)
