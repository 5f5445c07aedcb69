"""Make the web UI fixtures available to every test in this folder."""

from web_fixtures import database_url, sandbox, ui  # noqa: F401
