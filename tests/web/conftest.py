"""Make the web UI fixtures available to every test in this folder."""

from browser import live_server, page  # noqa: F401
from web_fixtures import database_url, sandbox, ui  # noqa: F401
