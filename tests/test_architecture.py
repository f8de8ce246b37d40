"""The layer contract in pyproject.toml ([tool.importlinter]) holds: adapters over services over the store."""

import subprocess
import sys
from pathlib import Path


def test_layers_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout
