"""The mass differential's explanation rules (kmodlab.oracle.massdiff), on their own: each
explains exactly its case and nothing wider."""
from __future__ import annotations

from kmodlab.oracle.massdiff import pending_work_only

CERT = ["cfg80211: Loading compiled-in X.509 certificates for regulatory database"]
WORK = ["platform regulatory.0: Direct firmware load for regulatory.db failed with error -2",
        "cfg80211: failed to load regulatory.db"]


def test_trailing_lines_of_queued_work():
    why = pending_work_only(CERT + WORK, CERT, ["reg_todo+0x0/0x10 [cfg80211]"])
    assert why.startswith("explained: ") and "reg_todo" in why


def test_no_queued_work_no_explanation():
    assert pending_work_only(CERT + WORK, CERT, []) is None


def test_sandbox_lines_must_be_the_real_ones_first():
    assert pending_work_only(WORK + CERT, CERT, ["w"]) is None          # not a prefix
    assert pending_work_only(CERT, CERT + WORK, ["w"]) is None          # the sandbox logs more
    assert pending_work_only(CERT, CERT, ["w"]) is None                 # nothing to explain
