"""The systemd units `sudo ./install.sh --service` writes (systemd itself does not run here:
the content is what is tested — user, command lines, journal, sandboxing, writable paths)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from addon.cli import main
from addon.deploy import render_units, writable_paths
from addon.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "HELPDESK_KIND": "zammad", "HELPDESK_URL": "https://zammad.example.com", "HELPDESK_TOKEN": "t0ken-value",
    "SELLER_NAME": "Muster IT GmbH", "SELLER_STREET": "Musterstraße 1", "SELLER_POSTCODE": "10115",
    "SELLER_CITY": "Berlin", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
}


def parse(content: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(content)
    return unit


def test_two_units_web_without_scheduler_and_the_one_scheduler(tmp_path: Path) -> None:
    settings = load_settings({**SETTINGS, "DATA_DIR": str(tmp_path / "data")})
    env_file = tmp_path / ".env"
    units = render_units(settings, repo=ROOT, env_file=env_file, user="ticketbill", host="127.0.0.1", port=8400)
    assert sorted(units) == ["ticketbill-sync.service", "ticketbill-web.service"]
    web, sync = parse(units["ticketbill-web.service"]), parse(units["ticketbill-sync.service"])
    ticketbill = Path(sys.prefix) / "bin" / "ticketbill"
    assert web["Service"]["ExecStart"] == (
        f"{ticketbill} -v --env-file {env_file} serve --no-scheduler --host 127.0.0.1 --port 8400")
    assert sync["Service"]["ExecStart"] == f"{ticketbill} -v --env-file {env_file} sync"
    for unit, name in ((web, "ticketbill-web"), (sync, "ticketbill-sync")):
        service = unit["Service"]
        assert service["User"] == service["Group"] == "ticketbill"
        assert service["WorkingDirectory"] == str(ROOT)
        assert service["SyslogIdentifier"] == name  # journalctl -u ticketbill-web / -sync
        assert "StandardOutput" not in service  # stdout and stderr go to the journal
        assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
        assert service["ReadWritePaths"] == str(tmp_path / "data")
        assert service["Restart"] == "always"
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        assert "postgresql.service" in unit["Unit"]["After"]
    assert int(sync["Service"]["TimeoutStopSec"]) >= 60  # a running billing run may finish


def test_sqlite_outside_the_data_dir_is_writable_too(tmp_path: Path) -> None:
    settings = load_settings({**SETTINGS, "DATA_DIR": str(tmp_path / "data"),
                              "DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 'ticketbill.sqlite'}"})
    assert writable_paths(settings) == [tmp_path / "data", tmp_path / "db"]
    inside = load_settings({**SETTINGS, "DATA_DIR": str(tmp_path / "data")})
    assert writable_paths(inside) == [tmp_path / "data"]


def test_a_path_with_a_space_is_refused(tmp_path: Path) -> None:
    settings = load_settings({**SETTINGS, "DATA_DIR": str(tmp_path / "my data")})
    with pytest.raises(ValueError, match="white space"):
        render_units(settings, repo=ROOT, env_file=tmp_path / ".env", user="ticketbill", host="127.0.0.1", port=8400)


def test_cli_writes_the_units(tmp_path: Path) -> None:
    env_file = tmp_path / "ticketbill.env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in {**SETTINGS, "DATA_DIR": str(tmp_path / "d")}.items()))
    result = CliRunner().invoke(main, ["--env-file", str(env_file), "service", "units", "--out-dir",
                                       str(tmp_path / "units"), "--port", "8500"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(tmp_path / "units" / "ticketbill-web.service"),
                                     str(tmp_path / "units" / "ticketbill-sync.service")]
    web = parse((tmp_path / "units" / "ticketbill-web.service").read_text(encoding="utf-8"))
    assert web["Service"]["ExecStart"].endswith(f"--env-file {env_file} serve --no-scheduler --host 127.0.0.1 "
                                                "--port 8500")
    paths = CliRunner().invoke(main, ["--env-file", str(env_file), "service", "paths"])
    assert paths.output.split() == [str(tmp_path / "d")]


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """systemd's own offline check (`systemd-analyze verify`: syntax, known keys, executable)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing: apt-get install systemd"
    settings = load_settings({**SETTINGS, "DATA_DIR": str(tmp_path / "data")})
    units = render_units(settings, repo=ROOT, env_file=tmp_path / ".env", user="ticketbill", host="127.0.0.1",
                         port=8400)
    for name, content in units.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    result = subprocess.run([analyze, "verify", *(str(tmp_path / name) for name in units)],
                            capture_output=True, text=True, check=False)
    ours = [line for line in result.stderr.splitlines() if "ticketbill-" in line]
    assert result.returncode == 0 and ours == [], result.stderr
