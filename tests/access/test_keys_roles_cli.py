"""``logwarden keys add-role|grant|revoke|roles`` as the custodian uses them, audited, refused for other roles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from retention.audit import AuditLog
from retention.roles import RoleRegistry


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "logwarden.yaml"
    config.write_text(
        f"keys: {{keyring: {tmp_path / 'keyring'}, root_key_file: {tmp_path / 'root.key'}}}\n"
        f"access: {{role_keys_dir: {tmp_path / 'roles'}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "keys", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_the_custodian_adds_grants_and_revokes_roles_and_others_are_refused(tmp_path):
    archive = ["--archive", str(tmp_path / "archive")]
    assert _run(tmp_path, "init", "--period", "2026-01", *archive).returncode == 0
    added = _run(tmp_path, "add-role", "--all", *archive, "--reason", "setup")
    assert added.returncode == 0, added.stderr
    for role in ("ops", "security", "planner", "privacy"):
        key = tmp_path / "roles" / f"{role}.key"
        assert oct(key.stat().st_mode & 0o777) == "0o600"
    registry = RoleRegistry(tmp_path / "keyring")
    assert registry.granted_ids("security") == ["data-2026-01@v1", "personal-2026-01@v1"]
    assert registry.granted_ids("planner") == []
    assert "planner: reads no archive data, so it holds no archive key" in added.stderr

    listed = _run(tmp_path, "roles")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [
        "custodian", "ops", "planner", "privacy", "security",
    ]  # fmt: skip

    refused = _run(tmp_path, "grant", "planner", *archive, "--role", "security", "--reason", "let me in")
    assert refused.returncode == 2 and "role 'security' may not keys" in refused.stderr
    assert registry.granted_ids("planner") == []
    no_reason = _run(tmp_path, "grant", "planner", *archive)
    assert no_reason.returncode == 2 and "--reason is required" in no_reason.stderr

    revoked = _run(tmp_path, "revoke", "security", *archive, "--reason", "left the team")
    assert revoked.returncode == 0 and "2 sealed key version(s) deleted" in revoked.stdout
    assert registry.granted_ids("security") == [] and "keys rotate" in revoked.stderr
    granted = _run(tmp_path, "grant", "security", *archive, "--reason", "back")
    assert granted.returncode == 0 and registry.granted_ids("security") == ["data-2026-01@v1", "personal-2026-01@v1"]

    results = [
        (e["command"], e["result"])
        for e in AuditLog(tmp_path / "archive" / "_audit" / "audit.jsonl", None).entries()
        if e["result"] != "started"
    ]
    assert results == [
        ("keys init", "ok"),
        ("keys add-role", "ok"),
        ("keys grant", "refused"),
        ("keys grant", "refused"),
        ("keys revoke", "ok"),
        ("keys grant", "ok"),
    ]
