"""Delivery of issued invoices to customers (e-mail via SMTP)."""
