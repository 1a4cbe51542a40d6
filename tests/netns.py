"""Run a test scenario with a name service the test controls, through the real resolver.

``run_isolated(script, hosts=..., nameserver=...)`` runs the Python
``script`` in a user, mount and network namespace of its own (``unshare``,
no root needed where unprivileged user namespaces are allowed), where
``/etc/hosts`` and ``/etc/resolv.conf`` are the test's files (bind mounts)
and only a loopback interface exists. The system's ``getaddrinfo`` there
reads those files and asks the test's DNS server (tests/servers/dns.py on
127.0.0.1:53), so the production resolver path is what is tested. The
script prints one JSON value as its last line; that is the result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent

_SETUP = (
    'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && '
    'ip link set lo up && exec "$3" "$4"'
)


def run_isolated(
    script: str, *, hosts: str = "127.0.0.1 localhost\n", nameserver: str = "127.0.0.1"
) -> Any:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8) for a network namespace")
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "--net", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot create a user/network namespace here: {probe.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp)
        (files / "hosts").write_text(hosts)
        (files / "resolv.conf").write_text(
            f"nameserver {nameserver}\noptions timeout:5 attempts:2\n"
        )
        (files / "scenario.py").write_text(script)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), *sys.path]))
        done = subprocess.run(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "--net",
                "sh",
                "-c",
                _SETUP,
                "sh",
                str(files / "hosts"),
                str(files / "resolv.conf"),
                sys.executable,
                str(files / "scenario.py"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    if done.returncode != 0:
        pytest.fail(f"the isolated scenario failed:\n{done.stderr}", pytrace=False)
    return json.loads(done.stdout.strip().splitlines()[-1])
