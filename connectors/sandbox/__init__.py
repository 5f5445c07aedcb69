"""Sandbox helpdesks: faithful imitations of each helpdesk's REST API for demo and tests."""
