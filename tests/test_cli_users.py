"""`ticketbill users ...`: the first admin from the shell, passwords, the list."""

from __future__ import annotations

from pathlib import Path

from test_cli_exports import run, values  # noqa: F401  (fixture)


def test_add_list_and_reset_a_password(values: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    added = run(tmp_path, values, "users", "add", "Anna", "--role", "admin", "--password", "a long password")
    assert added.exit_code == 0 and "user anna created (admin)" in added.output
    again = run(tmp_path, values, "users", "add", "anna", "--role", "viewer", "--password", "a long password")
    assert again.exit_code == 1 and "there is already a user anna" in again.output
    short = run(tmp_path, values, "users", "add", "bob", "--role", "viewer", "--password", "short")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert run(tmp_path, values, "users", "password", "anna", "--password", "another long one").exit_code == 0
    assert run(tmp_path, values, "users", "password", "nobody", "--password", "another long one").exit_code == 1
    listed = run(tmp_path, values, "users", "list")
    assert listed.output.split() == ["anna", "admin", "local"]
