"""The system's Chromium for the tests that need a real browser: installed with apt-get (as root) when missing.

Both pytest-xdist workers may ask at once; a file lock makes the second wait for the first's install instead of
racing it for dpkg's lock. When the browser cannot be had, the calling test is skipped with the reason.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("VORONKA_CHROMIUM", "/usr/bin/chromium")
_LOCK = Path(__file__).parents[1] / ".pytest_cache" / "chromium-install.lock"


def chromium() -> str:
    """The browser's path; installed when missing and possible, else the test is skipped."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") and os.geteuid() == 0:
        _LOCK.parent.mkdir(parents=True, exist_ok=True)
        with _LOCK.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not Path(CHROMIUM).exists():
                for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
                    subprocess.run(step, capture_output=True, timeout=900, check=False)
        if Path(CHROMIUM).exists():
            return CHROMIUM
    pytest.skip(f"No Chromium at {CHROMIUM} and it could not be installed (apt-get install chromium, as root).")
