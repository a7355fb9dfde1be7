"""The struct layouts the models assume (emu/layouts.py) against the kernels' own BTF.

Every fact a models file declares is its Linux 6.1 value: the embedded Debian 6.1 profile's
BTF facts must say the same.  On Debian 13's 6.12 (when that profile is imported) the files
whose facts differ are the ones listed here: a checked file refuses there (its models stop as
Unmodelled, naming the struct and both offsets), a per-profile file reads the 6.12 offsets.
"""
from __future__ import annotations

import pytest

from kmodlab.emu import layouts
from kmodlab.emu.errors import Unmodelled
from kmodlab.errors import KmodlabError
from kmodlab.profile import find_profile, load_profile, read_profile_file
from kmodlab.profile.debian import STRUCTS_WANTED

PROFILE_612 = "debian-6.12.118+deb13-amd64"
# models files whose declared facts Linux 6.12's BTF contradicts (or lacks)
DIFFER_612 = {"arch", "auxiliary", "backing_dev", "cred", "crypto", "device", "devres", "driver",
              "genetlink", "libfs", "misc", "net", "netlink", "proc", "serdev", "shrinker",
              "transport", "tty"}


def _facts():
    for file, structs in layouts.LAYOUTS.items():
        for struct, members in structs.items():
            for member, value in members.items():
                yield file, struct, member, value


def test_every_declared_fact_is_recorded_by_the_importer():
    for _file, struct, member, _v in _facts():
        assert struct in STRUCTS_WANTED
        assert member == "sizeof" or member in STRUCTS_WANTED[struct], (struct, member)


def test_every_declared_fact_is_linux_61s():
    structs = load_profile().structs
    wrong = []
    for file, struct, member, value in _facts():
        got = (structs.get(struct) or {}).get(member)
        if isinstance(got, list):
            got = list(got)
        if got != value:
            wrong.append(f"models/{file}.py: struct {struct} {member} is {value}, BTF says {got}")
    assert not wrong, "\n".join(wrong)
    for file in layouts.LAYOUTS:
        assert layouts.refusal(file, structs) is None


def test_no_profile_means_the_declared_values():
    assert all(layouts.refusal(f, None) is None for f in layouts.LAYOUTS)


def _profile_612():
    try:
        prof = read_profile_file(find_profile(PROFILE_612))
    except KmodlabError as e:
        pytest.skip(f"profile {PROFILE_612} is not imported: {e}")
    if not isinstance(prof.structs.get("class"), dict):
        pytest.skip(f"profile {PROFILE_612} predates the models' layouts (re-import it)")
    return prof


def test_612_differences_are_known():
    structs = _profile_612().structs
    differ = {f for f in layouts.LAYOUTS if layouts.disagreements(f, structs)}
    assert differ == DIFFER_612, sorted(differ)
    for f in differ:
        why = layouts.refusal(f, structs)
        if f in layouts.PER_PROFILE:
            assert why is None
        else:
            assert why and "assumes Linux 6.1's struct" in why and "this kernel's BTF" in why


class _FakeEmu:
    what = "init"
    _model_name = "__class_register"

    def __init__(self, structs):
        self.structs = structs


def test_per_profile_offsets_on_612():
    structs = _profile_612().structs
    o = layouts.layout("driver").of(_FakeEmu(structs))
    assert o["pci_driver", "driver"] == structs["pci_driver"]["driver"] != 120
    assert o["class", "name"] == 0
    with pytest.raises(Unmodelled) as e:
        o["class", "p"]                    # gone from struct class in Linux 6.4
    assert "struct class p" in str(e.value) and "__class_register" in str(e.value)
