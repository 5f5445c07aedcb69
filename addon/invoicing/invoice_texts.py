"""Printed label texts of the invoice PDF, in German and English.

Kept as plain dictionaries next to the formatter rather than in gettext catalogs: an invoice has a
few dozen fixed, legally worded phrases, and reviewing them side by side is what matters.
Placeholders use str.format names; the template fills them with already formatted values.

Each document type has its own wording (`kind_texts`): an invoice asks for payment and thanks for
the order; a cancellation (Stornorechnung) cancels, says how the amount is settled and tells the
accountant to book both documents against each other; an activity report (work done without
charge) asks for nothing. No phrase of one type appears on another.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "title_380": "Rechnung",
        "title_381": "Stornorechnung",
        "title_LN": "Leistungsnachweis ohne Berechnung",
        "number_380": "Rechnungsnr.",
        "number_381": "Stornorechnungsnr.",
        "number_LN": "Nachweisnr.",
        "date_380": "Rechnungsdatum",
        "date_381": "Rechnungsdatum",
        "date_LN": "Datum",
        "intro_380": "für unsere Leistungen im Leistungszeitraum {period} berechnen wir Ihnen:",
        "intro_380_month": "für unsere Leistungen im {month} berechnen wir Ihnen:",
        "intro_380_late": "Nachträglich erfasste Leistungen früherer Monate sind mit ihrem "
        "Leistungsdatum aufgeführt.",
        "intro_381": "hiermit stornieren wir die Rechnung Nr. {number} vom {date} vollständig. "
        "Jede Position wird mit umgekehrtem Vorzeichen aufgeführt:",
        "intro_LN": "folgende Leistungen im Leistungszeitraum {period} haben wir für Sie ohne "
        "Berechnung erbracht:",
        "closing_380": "Vielen Dank für Ihren Auftrag.",
        "closing_381": "Soweit die Leistungen zu berechnen sind, erhalten Sie darüber eine neue "
        "Rechnung.",
        "closing_LN": "Vielen Dank für Ihr Vertrauen.",
        "cancels": "Storno zur Rechnung Nr. {number} vom {date}",
        "cancellation_booking": "Bitte buchen Sie die Rechnung {number} und diese Stornorechnung "
        "gegeneinander aus.",
        "customer_number": "Kundennr.",
        "service_period": "Leistungszeitraum",
        "billing_month": "Abrechnungsmonat",
        "due_date": "Fällig am",
        "your_reference": "Ihre Referenz",
        "your_vat_id": "Ihre USt-IdNr.",
        "contact": "Ansprechpartner",
        "attention": "z. Hd.",
        "original_invoice": "Ursprungsrechnung",
        "original_date": "vom",
        "salutation": "Sehr geehrte Damen und Herren,",
        "col_pos": "Pos.",
        "col_description": "Beschreibung",
        "col_quantity": "Menge",
        "col_unit_price": "Einzelpreis",
        "col_net": "Betrag (netto)",
        "ticket": "Ticket",
        "line_total": "Summe Positionen",
        "allowance": "abzüglich {reason}",
        "allowance_percent": "abzüglich {reason} ({percent} auf {base})",
        "net_total": "Summe netto",
        "vat_row": "Umsatzsteuer {rate} auf {base}",
        "vat_row_zero": "Umsatzsteuer {rate} ({category}) auf {base}",
        "gross_total": "Gesamtbetrag",
        "category_AE": "Reverse Charge",
        "category_Z": "Nullsatz",
        "category_K": "innergem. Lieferung",
        "category_G": "Ausfuhr",
        "category_O": "nicht steuerbar",
        "category_E": "steuerfrei",
        "note_AE": "Steuerschuldnerschaft des Leistungsempfängers (Reverse Charge).",
        "note_AE_ids": "USt-IdNr. des Leistenden: {seller}, USt-IdNr. des "
        "Leistungsempfängers: {buyer}.",
        "note_E": "Kein Ausweis von Umsatzsteuer, da Kleinunternehmer gemäß § 19 UStG.",
        "note_K": "Steuerfreie innergemeinschaftliche Lieferung (§ 4 Nr. 1b UStG).",
        "note_G": "Steuerfreie Ausfuhrlieferung (§ 4 Nr. 1a UStG).",
        "note_O": "Nicht im Inland steuerbare Leistung.",
        "pay_due": "Bitte überweisen Sie den Gesamtbetrag von {amount} bis zum {date} unter "
        "Angabe der Rechnungsnummer {number} auf das unten genannte Konto.",
        "pay_now": "Bitte überweisen Sie den Gesamtbetrag von {amount} unter Angabe der "
        "Rechnungsnummer {number} auf das unten genannte Konto.",
        "pay_nothing": "Aus dieser Rechnung ist kein Betrag zu zahlen.",
        "pay_cancellation": "Den Betrag von {amount} erstatten wir Ihnen bzw. verrechnen ihn "
        "mit offenen Forderungen.",
        "pay_LN": "Es entstehen Ihnen keine Kosten; eine Zahlung ist nicht zu leisten.",
        "annex_title": "Leistungsnachweis",
        "annex_subtitle": "Anlage zur {document} Nr. {number} vom {date}",
        "col_date": "Datum",
        "col_agent": "Bearbeiter",
        "col_activity": "Tätigkeit",
        "col_raw": "Erfasst",
        "col_billed": "Abgerechnet",
        "col_covered": "Kontingent",
        "no_charge": "ohne Berechnung",
        "annex_ticket_total": "Summe Ticket {number}",
        "annex_total": "Gesamtsumme",
        "annex_hint": "Zeiten in Stunden:Minuten. „Abgerechnet“ ist die Zeit nach den "
        "vertraglichen Taktungs- und Mindestzeitregeln.",
        "annex_hint_covered": "„Kontingent“ ist der Teil der abgerechneten Zeit, den das "
        "Kontingent enthält; er ist mit der Pauschale abgegolten.",
        "vat_id": "USt-IdNr.",
        "tax_number": "Steuernr.",
        "iban": "IBAN",
        "bic": "BIC",
        "bank": "Bank",
        "phone": "Tel.",
        "page_label": "Seite {page} von {pages}",
    },
    "en": {
        "title_380": "Invoice",
        "title_381": "Cancellation invoice",
        "title_LN": "Activity report (no charge)",
        "number_380": "Invoice no.",
        "number_381": "Cancellation no.",
        "number_LN": "Report no.",
        "date_380": "Invoice date",
        "date_381": "Invoice date",
        "date_LN": "Date",
        "intro_380": "for our services in the period {period} we invoice you as follows:",
        "intro_380_month": "for our services in {month} we invoice you as follows:",
        "intro_380_late": "Services booked late for earlier months are listed with their own "
        "service dates.",
        "intro_381": "we hereby cancel invoice no. {number} of {date} in full. Every item is "
        "listed with the opposite sign:",
        "intro_LN": "we provided the following services in the period {period} free of charge:",
        "closing_380": "Thank you for your business.",
        "closing_381": "Where the services are chargeable, you will receive a new invoice for "
        "them.",
        "closing_LN": "Thank you for your trust.",
        "cancels": "Cancels invoice no. {number} of {date}",
        "cancellation_booking": "Please book invoice {number} and this cancellation invoice "
        "against each other.",
        "customer_number": "Customer no.",
        "service_period": "Service period",
        "billing_month": "Billing month",
        "due_date": "Due date",
        "your_reference": "Your reference",
        "your_vat_id": "Your VAT ID",
        "contact": "Contact",
        "attention": "Attn.",
        "original_invoice": "Original invoice",
        "original_date": "dated",
        "salutation": "Dear Sir or Madam,",
        "col_pos": "Item",
        "col_description": "Description",
        "col_quantity": "Quantity",
        "col_unit_price": "Unit price",
        "col_net": "Amount (net)",
        "ticket": "Ticket",
        "line_total": "Sum of items",
        "allowance": "less {reason}",
        "allowance_percent": "less {reason} ({percent} of {base})",
        "net_total": "Total net",
        "vat_row": "VAT {rate} on {base}",
        "vat_row_zero": "VAT {rate} ({category}) on {base}",
        "gross_total": "Total amount",
        "category_AE": "reverse charge",
        "category_Z": "zero rated",
        "category_K": "intra-EU supply",
        "category_G": "export",
        "category_O": "not subject to VAT",
        "category_E": "exempt",
        "note_AE": "Reverse charge: the recipient of the service is liable for VAT "
        "(Steuerschuldnerschaft des Leistungsempfängers).",
        "note_AE_ids": "Supplier VAT ID: {seller}, customer VAT ID: {buyer}.",
        "note_E": "No VAT is charged: small business exemption under § 19 UStG "
        "(German VAT Act).",
        "note_K": "VAT-exempt intra-Community supply (§ 4 no. 1b UStG).",
        "note_G": "VAT-exempt export supply (§ 4 no. 1a UStG).",
        "note_O": "Service not subject to German VAT.",
        "pay_due": "Please transfer the total amount of {amount} by {date} to the account "
        "below, quoting invoice number {number}.",
        "pay_now": "Please transfer the total amount of {amount} to the account below, quoting "
        "invoice number {number}.",
        "pay_nothing": "Nothing is payable on this invoice.",
        "pay_cancellation": "We will refund the amount of {amount} or set it off against open "
        "invoices.",
        "pay_LN": "There is no charge; nothing is payable.",
        "annex_title": "Activity report",
        "annex_subtitle": "Annex to {document} no. {number} of {date}",
        "col_date": "Date",
        "col_agent": "Agent",
        "col_activity": "Activity",
        "col_raw": "Recorded",
        "col_billed": "Billed",
        "col_covered": "Contingent",
        "no_charge": "no charge",
        "annex_ticket_total": "Total ticket {number}",
        "annex_total": "Grand total",
        "annex_hint": "Times in hours:minutes. \"Billed\" is the time after the contract's "
        "rounding and minimum-time rules.",
        "annex_hint_covered": "\"Contingent\" is the part of the billed time the contingent "
        "includes; the flat fee pays for it.",
        "vat_id": "VAT ID",
        "tax_number": "Tax no.",
        "iban": "IBAN",
        "bic": "BIC",
        "bank": "Bank",
        "phone": "Phone",
        "page_label": "Page {page} of {pages}",
    },
}


def kind_texts(language: str, type_code: str) -> dict[str, str]:
    """The label texts with the document type's own wording under neutral keys (title,
    number, date, intro, closing): the template never picks a phrase by type itself."""
    texts = TEXTS[language]
    kind = {key.rsplit("_", 1)[0]: value for key, value in texts.items() if key.endswith(f"_{type_code}")}
    missing = {"title", "number", "date", "intro", "closing"} - set(kind)
    if missing:
        raise ValueError(f"no wording for document type {type_code!r}: {sorted(missing)}")
    return {**texts, **kind}
