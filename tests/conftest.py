"""Shared fixtures. Real servers are started once per test session on 127.0.0.1 and
stopped by PID at the end (see tests/servers/)."""

pytest_plugins = [
    "tests.servers.postgres",
    "tests.servers.dav",
    "tests.servers.imap",
]
