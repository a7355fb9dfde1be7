"""Reports of `kmodlab check` that CI systems read: JUnit XML and SARIF 2.1.0.

JUnit: one <testsuite> per kernel profile, one <testcase> per module file (classname
``kmodlab.check.<profile>``, name = the module's name); a module that would not load is a
<failure> whose type is the errno's name and whose message is kmod's text, the errno and the
load step; its body holds the kernel's log lines.  A loadable module's "needs" goes to
<system-out>.

SARIF: one run per profile; each module that would not load is a result at the module file
(level "error"), its rule the load step and errno (``simplify_symbols/ENOENT``), its message the
kernel's reason and log lines.  Rules carry the step's name and the errno's text.
"""
from __future__ import annotations

import os
import socket
import time
from urllib.parse import quote

from ..errors import errno_name, strerror


def _uri(path: str) -> str:
    """A relative URI when the file is under the current directory, else a file: URI."""
    ap = os.path.abspath(path)
    rel = os.path.relpath(ap)
    if not rel.startswith(".."):
        return quote(rel.replace(os.sep, "/"))
    return "file://" + quote(ap)


def _failure_text(r) -> str:
    lines = list(r.log)
    if r.message and not any(r.message in l for l in lines):
        lines.append(r.message)
    return "\n".join(lines)


def junit_tree(runs: list[tuple[str, list, float]]):
    """runs: (profile name, results, seconds) → an ElementTree root <testsuites>."""
    import xml.etree.ElementTree as ET
    root = ET.Element("testsuites", name="kmodlab check")
    total = failures = 0
    seconds = 0.0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    for profile, results, took in runs:
        bad = sum(not r.ok for r in results)
        suite = ET.SubElement(root, "testsuite", name=f"kmodlab check on {profile}",
                              tests=str(len(results)), failures=str(bad), errors="0",
                              skipped="0", time=f"{took:.3f}", timestamp=stamp,
                              hostname=socket.gethostname())
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="kernel_profile",
                      value=profile)
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"kmodlab.check.{profile}",
                                 name=r.name or os.path.basename(r.file), file=r.file,
                                 time=f"{r.seconds:.6f}")
            if r.ok:
                out = f"ok (coresize {r.coresize}, initsize {r.initsize})"
                if r.needs:
                    out = f"ok, needs {', '.join(r.needs)} (coresize {r.coresize}, initsize {r.initsize})"
                ET.SubElement(case, "system-out").text = out
            else:
                f = ET.SubElement(case, "failure", type=errno_name(r.errno),
                                  message=f"{r.error} (errno {r.errno}, in {r.step or 'read'})")
                f.text = _failure_text(r)
        total += len(results)
        failures += bad
        seconds += took
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("time", f"{seconds:.3f}")
    return root


def write_junit(path: str, runs: list[tuple[str, list, float]]) -> None:
    """runs: (profile name, results, seconds), one <testsuite> each."""
    import xml.etree.ElementTree as ET
    root = junit_tree(runs)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def sarif_log(runs: list[tuple[str, list]]) -> dict:
    """runs: (profile name, results) → a SARIF 2.1.0 log (a dict ready for json.dump)."""
    try:
        from importlib.metadata import version
        ver = version("kmodlab")
    except Exception:
        ver = "0"
    out_runs = []
    for profile, results in runs:
        rules: dict[str, dict] = {}
        res = []
        for r in results:
            if r.ok:
                continue
            rid = f"{r.step or 'read'}/{errno_name(r.errno)}"
            if rid not in rules:
                rules[rid] = {"id": rid, "name": f"{r.step or 'read'}",
                              "shortDescription": {"text": f"the kernel refuses the module in "
                                                           f"{r.step or 'reading it'}: "
                                                           f"{strerror(r.errno)}"},
                              "defaultConfiguration": {"level": "error"},
                              "properties": {"errno": r.errno}}
            text = f"{r.name or os.path.basename(r.file)} would not load on {profile}: " \
                   f"{r.error} (errno {r.errno}, in {r.step or 'read'})"
            detail = _failure_text(r)
            res.append({"ruleId": rid, "ruleIndex": list(rules).index(rid), "level": "error",
                        "message": {"text": text + (f"\n{detail}" if detail else "")},
                        "locations": [{"physicalLocation": {
                            "artifactLocation": {"uri": _uri(r.file)}}}],
                        "properties": {"module": r.name, "errno": r.errno,
                                       "errnoName": errno_name(r.errno), "step": r.step,
                                       "kernelLog": list(r.log)}})
        out_runs.append({"tool": {"driver": {"name": "kmodlab", "version": ver,
                                             "rules": list(rules.values())}},
                         "automationDetails": {"id": f"kmodlab-check/{profile}/"},
                         "properties": {"kernelProfile": profile, "modulesChecked": len(results),
                                        "modulesWouldNotLoad": len(res)},
                         "results": res})
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
            "runs": out_runs}


def write_sarif(path: str, runs: list[tuple[str, list]]) -> None:
    """runs: (profile name, results), one SARIF run each."""
    import json
    with open(path, "w", encoding="utf-8") as f:
        json.dump(sarif_log(runs), f, indent=1)
        f.write("\n")
