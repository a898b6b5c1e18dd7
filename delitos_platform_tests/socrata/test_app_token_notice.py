"""sodapy's advice to use an app token: said once against a real domain, never against our emulator.

In a fresh interpreter (the notice is said once per process), clients are built the way every request builds
them; sodapy logs its advice on the root logger, which Python prints on stderr.
"""

from __future__ import annotations

import subprocess
import sys

BUILD_CLIENTS = """
import logging
from delitos_platform.socrata import SocrataResource
for url in {urls!r}:
    with SocrataResource(url=url).client():
        pass
logging.getLogger("a.library").warning("a library's record")
"""
NOTICE = "Requests made without an app_token"


def notices(*urls: str) -> int:
    """How many times the notice is printed while clients for ``urls`` are built, in that order."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD_CLIENTS.format(urls=list(urls))], capture_output=True, text=True, check=True
    )
    # Python's last resort prints a record bare; sodapy's basicConfig would have printed it "WARNING:a.library:…".
    assert done.stderr.count("a library's record") == 1 and "WARNING:a.library" not in done.stderr, done.stderr
    return done.stderr.count(NOTICE)


def test_the_emulator_on_loopback_gets_no_notice_and_a_real_domain_gets_it_once():
    assert notices("http://127.0.0.1:8000", "http://localhost:8000", "http://127.0.0.1:8000") == 0
    assert notices("http://127.0.0.1:8000", "https://www.datos.gov.co", "https://www.datos.gov.co") == 1


def test_building_a_client_leaves_the_root_logger_unconfigured():
    """sodapy's ``logging.warning`` used to configure the root logger: every Dagster line was printed twice."""
    assert notices("http://127.0.0.1:8000") == 0
