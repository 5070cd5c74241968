"""Run the DfE's SSDA903 rules that need only the Missing table over one CSV file, print JSON.

Runs under .venv-903's python, where csc-validator-be-903 lives: it needs pandas<2, so it cannot
share the project's .venv, and this script imports nothing of goldenhour's. The CSV is read by the
validator's own ingress, which names a table by its columns, so a file the DfE's tool would not
take as the Missing table fails here too. A rule is run when every table it names is Missing;
the others (Header, Episodes, last year's tables) are listed as skipped, not reported as errors.

    python check_missing.py --year 2026 [--la E09000012] missing.csv

`--year` is the year the collection starts, as in goldenhour.reports.ssda903: 2026 is 1 April
2026 to 31 March 2027, which the validator calls collection year "2027" (ruleset lac2026_27).
Prints {"ran", "skipped", "failed_to_run", "errors": [{"code", "row", "child", "message"}]},
`row` being the 0-based data row (the header line not counted), and exits 0 once the rules ran.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys

from lac_validator.lac_validator import LacValidator
from lac_validator.rules.ruleset_utils import get_year_ruleset
from lac_validator.utils import process_uploaded_files


def child(value: object) -> str | None:
    """The CHILD cell as JSON can carry it: a blank one is read as NaN."""
    return value if isinstance(value, str) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, required=True, help="year the collection starts")
    parser.add_argument("--la", default="", help="local authority code, e.g. E09000012")
    parser.add_argument("csv")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)  # the validator logs every rule at INFO

    registry = get_year_ruleset(str(args.year + 1))
    # The rules' `tables` are typed by hand: 576 and 580 spell one "MIssing".
    alone = [c for c, r in registry.items() if {t.lower() for t in r.tables} <= {"missing"}]
    metadata = {"collectionYear": str(args.year + 1), "localAuthority": args.la}
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON
        files = process_uploaded_files({"This year": [args.csv]})
        v = LacValidator(metadata, files, registry, selected_rules=alone)
    if set(v.dfs) != {"Missing"}:
        sys.exit(f"{args.csv} was read as {sorted(v.dfs)}, not as the Missing table")

    table = v.ds_results["Missing"]
    errors = [
        {
            "code": code,
            "row": int(row),
            "child": child(table.at[row, "CHILD"]),
            "message": rule.message,
        }
        for code, rule in registry.items()
        if f"ERR_{code}" in table
        for row in table.index[table[f"ERR_{code}"] == True]  # noqa: E712 (NaN where no error)
    ]
    report = {
        "ran": sorted(v.dones),
        "skipped": sorted(set(registry) - set(alone)) + v.skips,
        "failed_to_run": v.fails,
        "errors": sorted(errors, key=lambda e: (e["row"], e["code"])),
    }
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
