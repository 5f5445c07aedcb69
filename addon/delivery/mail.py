"""E-mail an issued invoice (PDF and XML attachments) through the tenant's SMTP server.

Delivery is part of the imperative shell: it never raises for a delivery problem, it returns a
`DeliveryResult` the caller stores and shows (the invoice itself stays issued either way).
Transient failures (connection refused or dropped, timeouts, 4xx replies) are retried with a
growing pause; permanent ones (5xx replies such as unknown recipient, authentication refused or
message rejected; an untrusted TLS certificate; a server lacking STARTTLS or AUTH) are not,
because repeating them cannot succeed and only risks a block list entry.
The password never appears in logs, reprs or the returned error text.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Literal, Protocol

from addon.invoicing.formatting import Formats, language_of
from addon.invoicing.snapshot import ACTIVITY_REPORT, CANCELLATION, InvoiceSnapshot

log = logging.getLogger(__name__)

Security = Literal["plain", "starttls", "ssl"]


class Attachment(Protocol):
    """What `send_invoice` needs from an attachment; `RenderedFile` fits."""

    @property
    def filename(self) -> str: ...

    @property
    def mimetype(self) -> str: ...

    @property
    def content(self) -> bytes: ...


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the outgoing mail server.

    security: "plain" (no encryption, only for a relay on a trusted network), "starttls"
    (usually port 587) or "ssl" (implicit TLS, usually port 465). `ca_file` trusts a private CA
    or a self-signed server certificate in addition to the system store.
    """

    host: str
    port: int
    security: Security = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = ""
    timeout: float = 30.0
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.security not in ("plain", "starttls", "ssl"):
            raise ValueError(f"SMTP security must be plain, starttls or ssl, not {self.security!r}")
        if not self.sender or "@" not in parseaddr(self.sender)[1]:
            raise ValueError(f"SMTP sender {self.sender!r} is not an e-mail address")


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of one delivery: 'sent' or 'failed', how many attempts, the last error."""

    status: Literal["sent", "failed"]
    attempts: int
    error: str | None = None
    message_id: str | None = None


SUBJECTS = {
    "de": {"invoice": "Rechnung {number}", "cancellation": "Stornorechnung {number}",
           "activity_report": "Leistungsnachweis {number} (ohne Berechnung)"},
    "en": {"invoice": "Invoice {number}", "cancellation": "Cancellation invoice {number}",
           "activity_report": "Activity report {number} (no charge)"},
}

BODIES = {
    "de": {
        "greeting": "Sehr geehrte Damen und Herren,",
        "invoice": "anbei erhalten Sie unsere Rechnung {number} vom {date} über {amount}.",
        "due": "Bitte überweisen Sie den Betrag bis zum {due} unter Angabe der Rechnungsnummer.",
        "cancellation": "anbei erhalten Sie die Stornorechnung {number} vom {date} zur Rechnung "
        "{preceding} über {amount}.",
        "activity_report": "anbei erhalten Sie den Leistungsnachweis {number} vom {date} über "
        "Leistungen, die wir Ihnen nicht berechnen. Eine Zahlung ist nicht zu leisten.",
        "attachments": "Die Rechnung liegt als PDF bei; die Datei {xml} enthält dieselbe Rechnung "
        "als strukturierte E-Rechnung (EN 16931) zur automatischen Verarbeitung.",
        "closing": "Mit freundlichen Grüßen",
    },
    "en": {
        "greeting": "Dear Sir or Madam,",
        "invoice": "please find attached our invoice {number} of {date} for {amount}.",
        "due": "Please transfer the amount by {due}, quoting the invoice number.",
        "cancellation": "please find attached cancellation invoice {number} of {date} for "
        "invoice {preceding}, amount {amount}.",
        "activity_report": "please find attached activity report {number} of {date} on services "
        "we do not charge for. Nothing is payable.",
        "attachments": "The invoice is attached as a PDF; the file {xml} contains the same invoice "
        "as a structured e-invoice (EN 16931) for automatic processing.",
        "closing": "Kind regards",
    },
}


def build_message(
    snapshot: InvoiceSnapshot,
    attachments: Sequence[Attachment],
    sender: str,
    recipient: str | Sequence[str],
) -> EmailMessage:
    """The e-mail for an invoice, in the invoice's language, with the files attached."""
    language = language_of(snapshot.language)
    formats = Formats(language, snapshot.currency)
    kind = {CANCELLATION: "cancellation", ACTIVITY_REPORT: "activity_report"}.get(snapshot.type_code, "invoice")
    texts = BODIES[language]
    values = {
        "number": snapshot.number,
        "date": formats.date(snapshot.issue_date),
        "amount": formats.money(abs(snapshot.gross)),
        "preceding": snapshot.preceding_number or "",
    }
    paragraphs = [texts["greeting"], texts[kind].format(**values)]
    if kind == "invoice" and snapshot.due_date:
        paragraphs.append(texts["due"].format(due=formats.date(snapshot.due_date)))
    xml_names = [a.filename for a in attachments if a.mimetype.endswith("xml")]
    if xml_names:
        paragraphs.append(texts["attachments"].format(xml=xml_names[0]))
    paragraphs.append(f"{texts['closing']}\n{snapshot.seller.name}")

    message = EmailMessage()
    message["Subject"] = f"{SUBJECTS[language][kind].format(number=snapshot.number)} – " \
        f"{snapshot.seller.name}"
    message["From"] = _sender_header(sender, snapshot.seller.name)
    recipients = [recipient] if isinstance(recipient, str) else list(recipient)
    message["To"] = ", ".join(recipients)
    if snapshot.seller.email and parseaddr(sender)[1] != snapshot.seller.email:
        message["Reply-To"] = snapshot.seller.email
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    message["Content-Language"] = language
    message.set_content("\n\n".join(paragraphs) + "\n")
    for attachment in attachments:
        maintype, _, subtype = attachment.mimetype.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message


def send_invoice(
    snapshot: InvoiceSnapshot,
    attachments: Sequence[Attachment],
    smtp: SmtpSettings,
    recipient: str | Sequence[str],
    *,
    retries: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    backoff: float = 5.0,
) -> DeliveryResult:
    """Send the invoice e-mail; `retries` extra attempts for transient errors, waiting
    backoff, 2*backoff, 4*backoff ... seconds in between (`sleep` is injectable for tests)."""
    if retries < 0:
        raise ValueError("retries must be >= 0")
    message = build_message(snapshot, attachments, smtp.sender, recipient)
    message_id = message["Message-ID"]
    attempts = 0
    error = ""
    while attempts <= retries:
        attempts += 1
        try:
            _deliver(message, smtp)
        except (smtplib.SMTPException, OSError) as exc:
            error = _redact(_describe(exc), smtp.password)
            permanent = _is_permanent(exc)
            log.warning(
                "invoice %s to %s via %s:%s (%s, user %s): attempt %d failed%s: %s",
                snapshot.number, message["To"], smtp.host, smtp.port, smtp.security,
                smtp.user or "-", attempts, " permanently" if permanent else "", error,
            )
            if permanent:
                break
            if attempts <= retries:
                sleep(backoff * 2 ** (attempts - 1))
            continue
        log.info("invoice %s sent to %s (attempt %d)", snapshot.number, message["To"], attempts)
        return DeliveryResult("sent", attempts, None, message_id)
    return DeliveryResult("failed", attempts, error, message_id)


def _deliver(message: EmailMessage, smtp: SmtpSettings) -> None:
    context = ssl.create_default_context(cafile=smtp.ca_file) if smtp.ca_file else None
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout,
            context=context or ssl.create_default_context(),
        )
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    with client:
        client.ehlo()
        if smtp.security == "starttls":
            client.starttls(context=context or ssl.create_default_context())
            client.ehlo()
        if smtp.user:
            client.login(smtp.user, smtp.password or "")
        client.send_message(message)


def _is_permanent(exc: BaseException) -> bool:
    """5xx replies are final (RFC 5321 §4.2.1), and so are an untrusted certificate and a server
    without the required STARTTLS/AUTH; everything else may work on a later try."""
    if isinstance(exc, ssl.SSLCertVerificationError | smtplib.SMTPNotSupportedError):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [f"{rcpt}: {code} {_decode(text)}" for rcpt, (code, text) in exc.recipients.items()]
        return "recipients refused: " + "; ".join(parts)
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.smtp_code} {_decode(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _redact(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


def _sender_header(sender: str, seller_name: str) -> str:
    name, address = parseaddr(sender)
    if name:
        return sender
    username, _, domain = address.partition("@")
    return str(Address(display_name=seller_name, username=username, domain=domain))
