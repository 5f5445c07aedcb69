"""Exports of issued invoices for accounting: DATEV EXTF Buchungsstapel and plain CSV."""
