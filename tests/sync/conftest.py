"""Make the sync fixtures available to every test in this folder."""

from sync_fixtures import sandbox, sidecar  # noqa: F401
