"""The files of one document, built from its snapshot alone and validated: the Factur-X hybrid
PDF, its CII XML and, for public buyers, the XRechnung XML. Pure apart from the renderer's and
the validator's CPU, and light to import (no database), so the monthly pass's render workers
(`addon.invoicing.prerender`) run exactly what the issuer runs inline: `valid_files`. The
validation goes with the rendering because in the issuer it cost 0.1-0.27 s CPU an invoice
(Schematron) on the monthly pass's critical path, and it needs Saxon (~185 MiB with the
compiled Schematron) wherever it runs."""

from __future__ import annotations

from collections.abc import Callable

from addon.invoicing.einvoice import embed_facturx, xml_file
from addon.invoicing.rendered import RenderedFile
from addon.invoicing.snapshot import ACTIVITY_REPORT, InvoiceSnapshot
from addon.invoicing.validate import ensure_valid

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


def valid_files(snapshot: InvoiceSnapshot, render: Renderer, *, xrechnung: bool = False) -> list[RenderedFile]:
    """`build_files`, every XML validated (XSD + EN 16931 Schematron; the XRechnung rules for
    the XRechnung XML): an invalid one raises `InvalidEInvoice`, so it is never stored or sent."""
    files = build_files(snapshot, render, xrechnung=xrechnung)
    if snapshot.type_code != ACTIVITY_REPORT:
        ensure_valid(files[1].content, snapshot.number)
        if xrechnung:
            ensure_valid(files[2].content, snapshot.number, xrechnung=True)
    return files
