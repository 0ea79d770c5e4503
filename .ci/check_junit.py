"""CI's verdict on pytest's junit file: every collected test ran, none skipped, at least one.

Usage: python .ci/check_junit.py JUNIT.xml. Exits 1 (with the reason) when the file is missing or
unreadable, when no test ran, or when any test was skipped: in CI every database is up
(SHADOWSWAP_REQUIRE_DBS=1), so a skip means a test silently did not check what it claims to.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def verdict(path: str) -> tuple[bool, str]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return False, f"no readable junit file at {path}: {exc}"
    cases = list(root.iter("testcase"))
    skipped = [c for c in cases if c.find("skipped") is not None]
    # the suites' own counters too, in case a skip was recorded without a testcase element
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counted_skips = sum(int(s.get("skipped") or 0) for s in suites)
    executed = len(cases) - len(skipped)
    summary = f"tests executed: {executed}, skipped: {max(len(skipped), counted_skips)}"
    if skipped or counted_skips:
        names = ", ".join(f"{c.get('classname')}::{c.get('name')}" for c in skipped[:10])
        return False, f"{summary}: none may skip in CI ({names})"
    if executed == 0:
        return False, f"{summary}: no test ran"
    return True, summary


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    ok, message = verdict(sys.argv[1])
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
