"""`kmodlab check` for distro CI: exit codes, "needs", the process pool, JUnit XML and SARIF
reports read back by real consumers (junitparser; sarif-tools and sarif-pydantic's SARIF 2.1.0
model)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EX = Path(__file__).resolve().parents[1] / "examples"


def km(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kmodlab", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The example modules twice over (two "flavours"), plus a file that is no module."""
    d = tmp_path_factory.mktemp("tree")
    for sub in ("a", "b"):
        (d / sub).mkdir()
        for ko in EX.glob("*.ko"):
            shutil.copy(ko, d / sub / ko.name)
    (d / "a" / "notes.ko").write_text("not an ELF file\n")
    return d


def test_exit_codes(tree, tmp_path):
    assert km("check", EX / "hello.ko", EX / "kmodlab_provider.ko").returncode == 0
    assert km("check", tree).returncode == 1
    p = km("check", "--no-such-option", tree)
    assert p.returncode == 2 and "check: ERROR:" in p.stderr
    p = km("check", "--kernel", "no-such-profile", EX / "hello.ko")
    assert p.returncode == 2 and "check: ERROR:" in p.stderr
    assert km("check", tmp_path / "missing.ko").returncode == 1


def test_needs_names_the_modules_to_load_first():
    p = km("check", EX / "kmodlab_provider.ko", EX / "kmodlab_consumer.ko")
    line = next(l for l in p.stdout.splitlines() if "kmodlab_consumer.ko" in l)
    assert ": kmodlab_consumer: ok, needs kmodlab_provider (" in line
    p = km("check", "--json", EX / "kmodlab_consumer.ko", EX / "kmodlab_provider.ko", EX / "hello.ko")
    objs = {o["name"]: o for o in map(json.loads, p.stdout.splitlines())}
    assert objs["kmodlab_consumer"]["needs"] == ["kmodlab_provider"]
    assert objs["hello"]["needs"] == [] and objs["kmodlab_provider"]["needs"] == []
    # alone, the consumer's symbol has no exporter: it would not load
    p = km("check", "--json", EX / "kmodlab_consumer.ko")
    o = json.loads(p.stdout)
    assert not o["ok"] and o["errno"] == 2 and o["step"] == "simplify_symbols"


def test_pool_gives_the_same_answers_in_the_same_order(tree):
    one = km("check", "--json", "-j", "1", tree)
    two = km("check", "--json", "-j", "2", tree)
    assert one.returncode == two.returncode == 1
    assert one.stdout == two.stdout
    rows = [json.loads(l) for l in one.stdout.splitlines()]
    assert len(rows) == 11 and sum(r["ok"] for r in rows) == 8
    text = km("check", "-j", "2", tree)
    assert "11 checked, 8 would load, 3 would not" in text.stderr
    assert "ENOEXEC in elf_validity_check" in text.stderr     # the summary table
    assert "2 processes" in text.stderr


def test_junit_xml_read_by_junitparser(tree, tmp_path):
    junitparser = pytest.importorskip("junitparser")
    out = tmp_path / "report.xml"
    assert km("check", "-q", "--junit-xml", out, tree).returncode == 1
    xml = junitparser.JUnitXml.fromfile(str(out))
    suites = list(xml)
    assert len(suites) == 1 and suites[0].tests == 11 and suites[0].failures == 3
    cases = {(c.name, Path(c._elem.get("file")).parent.name): c for c in suites[0]}
    assert len(cases) == 11
    failed = cases[("proprietary", "a")]
    (res,) = failed.result
    assert isinstance(res, junitparser.Failure) and res.type == "ENOENT"
    assert "Unknown symbol ktime_get (err -2)" in res.text
    assert "in simplify_symbols" in res.message
    assert cases[("notes.ko", "a")].result[0].type == "ENOEXEC"
    ok = cases[("kmodlab_consumer", "b")]
    assert ok.is_passed and "needs kmodlab_provider" in ok.system_out


def test_sarif_validates_and_is_read_by_sarif_tools(tree, tmp_path):
    sarif_pydantic = pytest.importorskip("sarif_pydantic")
    loader = pytest.importorskip("sarif.loader")
    out = tmp_path / "report.sarif"
    assert km("check", "-q", "--sarif", out, tree, cwd=tree).returncode == 1
    log = json.loads(out.read_text())
    model = sarif_pydantic.Sarif.model_validate(log)
    assert model.version == "2.1.0" and len(model.runs) == 1
    assert len(model.runs[0].results) == 3
    sf = loader.load_sarif_file(str(out))
    assert sf.get_result_count() == 3
    records = sf.get_records()
    codes = sorted(r["Code"] for r in records)
    assert codes == ["elf_validity_check/ENOEXEC", "simplify_symbols/ENOENT", "simplify_symbols/ENOENT"]
    locs = sorted(r["Location"] for r in records)
    assert locs == ["a/notes.ko", "a/proprietary.ko", "b/proprietary.ko"]   # relative to the run's cwd
    rules = {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert rules == {"elf_validity_check/ENOEXEC", "simplify_symbols/ENOENT"}
