"""Invoices as documents: snapshot, numbering, rendering (PDF, e-invoice XML), storage."""
