"""What a fresh process loads before its first check, so that check measures the service."""

from __future__ import annotations

import subprocess
import sys


def test_http_backend_loaded_with_the_prober_module():
    # anyio's asyncio backend, else imported on the event loop inside the first HTTP check.
    code = "import sys, probe.probers._httpcore; print('anyio._backends._asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
