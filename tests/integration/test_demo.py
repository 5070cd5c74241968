"""`goldenhour demo` runs acceptance scenario 1 end to end and prints its timeline, then a rota
handover during an open alert and the watchers' act."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ssda903.validator import check_missing_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_demo_runs_scenario_1_and_prints_the_timeline(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOLDENHOUR_KAFKA_BOOTSTRAP", "GOLDENHOUR_DATABASE_URL")
    }
    env["GOLDENHOUR_DEMO_OUT"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "goldenhour", "demo"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=110,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert "TIMELINE of case LBH-2026-0042" in out, out
    assert re.search(r"time\s+policy\s+step\s+who\s+organisation\s+channel\s+status", out), out
    timeline = out.split("TIMELINE of case", 1)[1]
    # The first wave: police control room, duty manager, care home manager, by SMS and email.
    for contact in ("mps-cr", "lbh-duty", "oak-mgr"):
        # SMS reports delivery; SMTP only says the mail was handed over.
        for channel, status in (("sms", "delivered"), ("email", "sent")):
            assert re.search(rf"\bs0\s+{contact}\s+.+\s{channel}\s+{status}", timeline), contact
    # The duty manager acknowledged by SMS reply.
    assert re.search(r"\back\s+lbh-duty\s+Hackney Children's Services\s+sms\s+replied ACK \d+", out)
    assert "acknowledged by       lbh-duty" in out
    # The later unless-acknowledged step was skipped, with its reason.
    assert re.search(r"\bs3\s+SKIPPED .*acknowledged before", timeline), timeline
    # The child located: everyone told is stood down.
    assert "STAND DOWN" in timeline
    assert re.search(r"\bstand_down\s+ukmpu\s+.+\ssms\s+delivered", timeline), timeline
    # The ones paged are those on call by the rotas; the ones off duty get nothing.
    act1 = out.split("ACT 2", 1)[0]
    words = " ".join(act1.split())  # the narration as one line, whatever its wrapping
    assert "lbh-duty on call as duty manager this week, lbh-edt-2 off duty" in words, act1
    assert "mps-cr on call as control room this week, mps-cr-2 off duty" in words, act1
    assert "lbh-edt-2 and mps-cr-2, off duty, are not." in words, act1
    assert not re.search(r"SMS\s+-> (lbh-edt-2|mps-cr-2) ", act1), act1
    assert "[ok] paged by the rotas: the ones on call, not the ones off duty" in act1, act1
    # Act 2: a handover while an alert is open. The one on call is paged; lbh-edt-2 takes over
    # and is briefed once; a reminder reaches both; lbh-edt-2 acknowledges with the briefing's
    # code; both are stood down; the override is withdrawn.
    act2 = out.split("ACT 2", 1)[1].split("ACT 3", 1)[0]
    words = " ".join(act2.split())
    assert re.search(r"SMS\s+-> lbh-duty\s+GOLDEN HOUR ALERT: .*LBH-2026-0063", act2), act2
    assert not re.search(r"SMS\s+-> lbh-edt-2 GOLDEN HOUR ALERT", act2), act2
    briefings = re.findall(r"SMS\s+-> lbh-edt-2 GOLDEN HOUR HANDOVER: you are on call now", act2)
    assert len(briefings) == 1, act2
    briefing = re.search(
        r'"(GOLDEN HOUR HANDOVER: .*? LBH-2026-0063 missing since \d\d:\d\d \d\d/\d\d '
        r'ACK (\d+)\. Reply ACK and the code when acting\. Ref \w+)"',
        words,
    )
    assert briefing and len(briefing.group(1)) <= 320, act2
    code = briefing.group(2)
    reminded = re.search(
        r"(REMINDER \d/3) reaches both lbh-duty, gone off duty, and lbh-edt-2", words
    )
    assert reminded, act2
    for who in ("lbh-duty", "lbh-edt-2"):
        assert re.search(rf"SMS\s+-> {who}\s+{reminded.group(1)}: ", act2), (who, act2)
        assert re.search(rf"SMS\s+-> {who}\s+STAND DOWN: case LBH-2026-0063", act2), (who, act2)
    assert f"replies by SMS with the briefing's code: ACK {code}" in words, act2
    assert "acknowledged by lbh-edt-2." in words, act2
    assert "on call now: lbh-duty." in words, act2
    assert "CHECKS (act 2)" in act2 and "[ok] acknowledged by the one briefed" in act2, act2
    # Act 3: the identification golden hour runs out, then a check-in falls overdue.
    act3 = out.split("ACT 3", 1)[1]
    assert re.search(r"SMS\s+-> lbh-duty\s+GOLDEN HOUR: NO SAFE PLACEMENT", act3), act3
    assert re.search(r"SMS\s+-> mps-cr\s+GOLDEN HOUR: NO SAFE PLACEMENT", act3), act3
    assert re.search(r"SMS\s+-> oak-mgr\s+WELFARE CONCERN", act3), act3
    assert re.search(r"SMS\s+-> lbh-sw\s+WELFARE CONCERN", act3), act3
    assert re.search(r"missed_checkin\s+resolved\s+check-in recorded", act3), act3
    # Act 4: Hackney's figures of the other three, and its Missing table passing the DfE's rules.
    act4 = out.split("ACT 4", 1)[1]
    assert re.search(r"^total\s+2\s+2/0\s+2\s", act4, re.M), act4
    [table] = tmp_path.glob("ssda903-missing-LBH-*.csv")
    year = int(table.stem.rsplit("-", 1)[1])
    lines = table.read_text().splitlines()
    assert lines[0] == "CHILD,DOB,MISSING,MIS_START,MIS_END" and len(lines) == 3, lines
    report = check_missing_table(table.read_text(), year)
    assert report["errors"] == [] and report["ran"], report
    assert "FAIL" not in out
    assert "RESULT: PASS" in out
    # The narration fits a terminal; log lines (JSON, on stderr) are the operators', not the demo's.
    narration = [line for line in out.splitlines() if not line.startswith("{")]
    assert len(max(narration, key=len)) <= 100
