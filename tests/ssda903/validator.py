"""Check a Missing table with the DfE's SSDA903 validator, from the project's own tests.

The validator needs pandas<2, so it lives in .venv-903 (built by `make .venv-903/.installed`)
and runs here as a subprocess of check_missing.py; this module itself uses only the stdlib.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = HERE.parents[1] / ".venv-903" / "bin" / "python"
TIMEOUT = 120  # seconds; one check takes about a second, this bounds a hung one


def check_missing_table(csv_text: str, year: int) -> dict:
    """The validator's report on `csv_text` for the collection year starting 1 April `year`.

    Returns check_missing.py's JSON: {"ran", "skipped", "failed_to_run", "errors"}. Raises
    RuntimeError carrying the script's stderr when it could not run, e.g. when the validator
    did not read the CSV as the Missing table.
    """
    if not PYTHON.exists():
        raise RuntimeError(f"{PYTHON} is missing: run `make .venv-903/.installed` first")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "missing.csv"  # the validator goes by the .csv suffix
        path.write_text(csv_text, encoding="utf-8")
        done = subprocess.run(
            [str(PYTHON), str(HERE / "check_missing.py"), "--year", str(year), str(path)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    if done.returncode != 0:
        raise RuntimeError(f"check_missing.py exited {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout)
