"""The files of one document, built from its snapshot alone: the Factur-X hybrid PDF, its CII
XML and, for public buyers, the XRechnung XML. Pure apart from the renderer's CPU, and light to
import (no database), so the monthly pass's render workers (`addon.invoicing.prerender`) run
exactly this; validation stays with the issuer (`addon.invoicing.issue.document_files`)."""

from __future__ import annotations

from collections.abc import Callable

from addon.invoicing.einvoice import embed_facturx, xml_file
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import ACTIVITY_REPORT, InvoiceSnapshot

Renderer = Callable[[InvoiceSnapshot], RenderedFile]


def build_files(snapshot: InvoiceSnapshot, render: Renderer, *, xrechnung: bool = False) -> list[RenderedFile]:
    """PDF (with the CII XML embedded), CII XML, XRechnung XML if asked; an activity report is
    not an invoice: its PDF alone."""
    pdf = render(snapshot)
    if snapshot.type_code == ACTIVITY_REPORT:
        return [pdf]
    xml = xml_file(snapshot)
    lang = "de-DE" if snapshot.language == "de" else "en-GB"
    files = [RenderedFile(pdf.filename, pdf.mimetype, embed_facturx(pdf.content, xml.content, lang=lang)), xml]
    if xrechnung:
        files.append(xml_file(snapshot, xrechnung=True))
    return files
