"""Debian importer: a profile from linux-image-<rel> and linux-headers-<rel> .deb files.

Pure Python: a .deb is an ``ar`` archive whose ``data.tar.{xz,zst,gz}`` member holds the files.
From the image package we take boot/vmlinuz-<rel> (→ vmlinux, exports, UTS name, certificates),
boot/config-<rel>, lib/modules/<rel>/modules.builtin(.modinfo), and the vermagic of the modules;
from the headers package(s) Module.symvers.  :func:`fetch_packages` downloads the packages with
``apt-get download`` into a cache directory (reusing what is there).
"""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from ..errors import KmodlabError, UsageError
from . import Export, ExportTable, Profile, Prototypes, save_profile, profile_dir
from .symvers import parse_config, parse_symvers
from .vmlinux import Vmlinux, decompress_bzimage, find_certificates

AR_MAGIC = b"!<arch>\n"
WANTED_BOOT = re.compile(r"^boot/(vmlinuz|config)-(.+)$")
WANTED_MODDIR = re.compile(r"^(?:usr/)?lib/modules/([^/]+)/(modules\.builtin(?:\.modinfo)?)$")
KO = re.compile(r"^(?:usr/)?lib/modules/([^/]+)/kernel/.*\.ko(\.xz|\.zst|\.gz)?$")
VERMAGIC = re.compile(rb"(?:^|\0)vermagic=([^\0]*)\0")
RELEASE = re.compile(r"^(\d+\.\d+(?:\.\d+)?(?:-\d+|\+deb\d+))-(.+)$")   # 6.1.0-56 | 6.12.118+deb13, + amd64
IMPORTER_VERSION = 9            # bump when profiles gain facts: cached imports are redone
MAX_COMPRESSED_KO = 100                                       # vermagic samples of .ko.xz etc.


class DebError(KmodlabError):
    """A .deb that the importer cannot read."""


# -- reading .deb files ----------------------------------------------------------------------

def deb_data_member(path: Path) -> tuple[str, bytes]:
    """(member name, bytes) of the data.tar.* member of a .deb."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != AR_MAGIC:
                raise DebError(f"{path}: not a Debian package (no ar header)")
            while True:
                hdr = f.read(60)
                if len(hdr) < 60:
                    break
                if hdr[58:60] != b"`\n":
                    raise DebError(f"{path}: damaged ar member header")
                name = hdr[:16].decode("ascii", "replace").strip().rstrip("/")
                try:
                    size = int(hdr[48:58].decode().strip())
                except ValueError:
                    raise DebError(f"{path}: damaged ar member size") from None
                if name.startswith("data.tar"):
                    data = f.read(size)
                    if len(data) != size:
                        raise DebError(f"{path}: truncated ({name})")
                    return name, data
                f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError as e:
        raise DebError(f"cannot read {path}: {e.strerror}") from None
    raise DebError(f"{path}: no data.tar member")


def iter_deb_files(path: Path):
    """Yield (path without leading './', TarInfo, file object) for each regular file, in
    archive order (a stream: read each file object before moving on)."""
    name, data = deb_data_member(path)
    raw = io.BytesIO(data)
    if name.endswith(".zst"):
        import zstandard
        stream = zstandard.ZstdDecompressor().stream_reader(raw)
        mode = "r|"
    elif name.endswith((".xz", ".gz", ".bz2")):
        stream, mode = raw, "r|" + name.rsplit(".", 1)[1]
    elif name == "data.tar":
        stream, mode = raw, "r|"
    else:
        raise DebError(f"{path}: unsupported data member {name}")
    try:
        with tarfile.open(fileobj=stream, mode=mode) as tar:
            for ti in tar:
                if not ti.isfile():
                    continue
                p = ti.name[2:] if ti.name.startswith("./") else ti.name.lstrip("/")
                yield p, ti, tar.extractfile(ti)
    except Exception as e:                  # tarfile, lzma, zlib or zstd: a damaged archive
        raise DebError(f"{path}: damaged {name}: {type(e).__name__}: {e}") from None


def _decompress_ko(name: str, data: bytes) -> bytes:
    if name.endswith(".xz"):
        import lzma
        return lzma.decompress(data)
    if name.endswith(".zst"):
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if name.endswith(".gz"):
        import gzip
        return gzip.decompress(data)
    return data


def read_image_deb(path: Path) -> dict:
    """The files a profile needs from a linux-image package."""
    found: dict = {"vermagics": {}, "ko_count": 0}
    compressed_seen = 0
    for p, ti, f in iter_deb_files(path):
        m = WANTED_BOOT.match(p)
        if m:
            found[m[1]] = (m[2], f.read())
            continue
        m = WANTED_MODDIR.match(p)
        if m:
            found.setdefault("releases", set()).add(m[1])
            found[m[2]] = f.read()
            continue
        m = KO.match(p)
        if m:
            found.setdefault("releases", set()).add(m[1])
            if m[2]:
                if compressed_seen >= MAX_COMPRESSED_KO:
                    continue
                compressed_seen += 1
            try:
                data = _decompress_ko(p, f.read())
            except Exception:
                continue
            found["ko_count"] += 1
            vm = VERMAGIC.search(data)
            if vm:
                v = vm[1].decode("utf-8", "replace")
                found["vermagics"].setdefault(v, p)
    if "vmlinuz" not in found:
        raise DebError(f"{path}: no boot/vmlinuz-* (is this a linux-image package?)")
    return found


def read_symvers_from_debs(debs: list[Path], release: str | None) -> tuple[str, Path]:
    """Module.symvers text from the first headers package that has one (for ``release``)."""
    ordered = sorted(debs, key=lambda d: ("common" in d.name, "kbuild" in d.name))
    others = []
    for deb in ordered:
        for p, ti, f in iter_deb_files(deb):
            if p.endswith("/Module.symvers") and p.startswith("usr/src/linux-headers-"):
                rel = p[len("usr/src/linux-headers-"):].split("/", 1)[0]
                if release is None or rel == release:
                    return f.read().decode("utf-8", "replace"), deb
                others.append(rel)
    if others:
        raise DebError(f"the headers packages are for {', '.join(sorted(set(others)))}, "
                       f"not {release}")
    raise DebError("no Module.symvers in " + ", ".join(str(d) for d in debs) +
                   " (give the linux-headers-<release> package for the image's flavour)")


# -- building the profile --------------------------------------------------------------------

def expected_vermagic(release: str, config: dict[str, str]) -> str:
    """VERMAGIC_STRING as include/linux/vermagic.h composes it (x86_64: no arch part)."""
    s = release + " "
    if config.get("SMP") == "y":
        s += "SMP "
    if config.get("PREEMPT_RT") == "y":
        s += "preempt_rt "
    elif config.get("PREEMPT_BUILD") == "y" or config.get("PREEMPT") == "y":
        s += "preempt "
    if config.get("MODULE_UNLOAD") == "y":
        s += "mod_unload "
    if config.get("MODVERSIONS") == "y":
        s += "modversions "
    return s


def builtin_names(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        base = line.rsplit("/", 1)[-1]
        for suf in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
            if base.endswith(suf):
                base = base[:-len(suf)]
                break
        out.append(base.replace("-", "_"))
    return out


# What the sandbox kernel reads of the target kernel's struct layouts (from vmlinux's BTF): one
# list for every release; what a release lacks is recorded as None (profile.structs).
STRUCTS_WANTED = {
    "module": ["state", "name", "syms", "num_syms", "kp", "num_kp", "init", "exit", "taints",
               "args", "percpu", "percpu_size", "refcnt", "kallsyms", "core_kallsyms",
               "core_layout", "init_layout", "mem",
               *[f"mem[{t}].{f}" for t in range(7) for f in ("base", "size")]],
    "module_layout": ["base", "size", "text_size", "ro_size", "ro_after_init_size"],
    "module_memory": ["base", "size"],
    "kernel_param": ["name", "mod", "ops", "perm", "level", "flags"],
    "kernel_symbol": ["value_offset", "name_offset", "namespace_offset"],
    "mod_kallsyms": ["symtab", "num_symtab", "strtab", "typetab"],
    "modversion_info": ["crc", "name"],
    "kmem_cache_args": ["align", "useroffset", "usersize", "ctor"],        # 6.12's slab API
    "pcpu_hot": ["current_task", "preempt_count", "cpu_number", "top_of_stack"],  # 6.12
    "alt_instr": ["instr_offset", "repl_offset", "instrlen", "replacementlen"],
    "file_system_type": ["fs_flags"],          # /proc/filesystems' nodev (registrations.py)
    "enum mod_mem_type": [],
    "enum module_state": [],
    "enum cpuhp_state": [],                    # CPU hotplug states (emu/models/cpuhp.py)
}


def _with_model_layouts(wanted: dict) -> dict:
    """STRUCTS_WANTED plus every struct fact the emulator's models declare (emu/layouts.py,
    plain data: importing it loads neither the emulator nor unicorn)."""
    from ..emu.layouts import wanted as models_wanted
    out = {k: list(v) for k, v in wanted.items()}
    for struct, members in models_wanted().items():
        have = out.setdefault(struct, [])
        have += [m for m in members if m not in have]
    return out


STRUCTS_WANTED = _with_model_layouts(STRUCTS_WANTED)


def struct_layouts(vmlinux_elf: bytes, functions=()) -> tuple[dict, dict]:
    """profile.structs and profile.prototypes (the argument counts of ``functions``, the
    kernel's exported functions) from the kernel's own BTF (vmlinux's .BTF section); ({}, {})
    without BTF."""
    from .btf import Btf, btf_section, extract_layouts, extract_prototypes
    raw = btf_section(vmlinux_elf)
    if raw is None:
        return {}, {}
    btf = Btf.parse(raw)
    return extract_layouts(btf, STRUCTS_WANTED), extract_prototypes(btf, functions)


def builtin_sysfs_dirs(vml: Vmlinux, structs: dict, builtin_modinfo: bytes) -> list[str]:
    """The /sys/module directories of built-in code, as param_sysfs_builtin and
    version_sysfs_builtin make them at boot: one per prefix of a built-in parameter with a
    non-zero mode ("kfence" for kfence.burst; "kernel" for core_param()s, which have no
    prefix), one per built-in MODULE_VERSION.  A built-in *driver* also gets one when it
    registers (module_add_driver), which depends on what its init finds: not known here."""
    kp = structs.get("kernel_param") or {}
    names = set()
    if kp.get("sizeof") and kp.get("name") is not None and kp.get("perm") is not None:
        for name, perm in vml.builtin_params(kp["sizeof"], kp["name"], kp["perm"]):
            if perm:
                names.add(name.split(".", 1)[0] if "." in name else "kernel")
    for raw in builtin_modinfo.split(b"\0"):
        mod, dot, rest = raw.partition(b".")
        if dot and rest.startswith(b"version="):
            names.add(mod.decode("latin-1"))
    return sorted(names)


def build_profile(image_deb: Path, headers_debs: list[Path], log=None) -> Profile:
    say = log or (lambda msg: None)
    image_deb, headers_debs = Path(image_deb), [Path(h) for h in headers_debs]
    say(f"reading {image_deb.name}")
    img = read_image_deb(image_deb)
    rel_boot, vmlinuz = img["vmlinuz"]
    releases = img.get("releases") or {rel_boot}
    if len(releases) != 1:
        raise DebError(f"{image_deb}: modules for several releases: {', '.join(sorted(releases))}")
    release = next(iter(releases))
    if release != rel_boot:
        raise DebError(f"{image_deb}: vmlinuz-{rel_boot} but lib/modules/{release}")
    if "config" not in img:
        raise DebError(f"{image_deb}: no boot/config-{release}")
    config = parse_config(img["config"][1].decode("utf-8", "replace"))

    say(f"decompressing vmlinuz-{release}")
    vml = Vmlinux(decompress_bzimage(vmlinuz))
    raw = vml.exports()
    addrs = {e.name: e.addr for e in raw}
    uts = vml.utsname(addrs)
    if uts["release"] != release:
        raise DebError(f"vmlinuz says release {uts['release']}, the package {release}")
    certs = find_certificates(vml.data)
    if config.get("MODULE_SIG") == "y" and not certs:
        raise DebError("CONFIG_MODULE_SIG=y but no module-signing certificate found in vmlinux")

    # vermagic: what the modules carry, checked against the kernel's own string and the config
    computed = expected_vermagic(release, config)
    vms = img["vermagics"]
    if len(vms) > 1:
        raise DebError("the modules disagree about vermagic: " +
                       "; ".join(f"{v!r} ({p})" for v, p in vms.items()))
    vermagic = next(iter(vms)) if vms else computed
    if vermagic != computed:
        say(f"warning: modules' vermagic {vermagic!r} differs from the config's {computed!r}")
    if b"\0" + vermagic.encode() + b"\0" not in vml.data:
        say(f"warning: vermagic {vermagic!r} not found in vmlinux")

    say("reading Module.symvers")
    symtext, symdeb = read_symvers_from_debs(headers_debs, release)
    symvers = parse_symvers(symtext, f"{symdeb.name}:Module.symvers")
    check_against_symvers(raw, symvers)

    exports = ExportTable.of([Export(e.name, e.addr, e.crc, e.gpl, e.namespace, "vmlinux", e.kind)
                              for e in raw])
    module_exports = ExportTable.of([Export(s.name, 0, s.crc, s.gpl, s.namespace, s.owner, "")
                                     for s in symvers if s.owner != "vmlinux"], module=True)
    sections = [(s.name, s.addr, s.size, vml.kind_of(s.addr)) for s in vml.sections
                if s.flags & 0x2 and s.size]
    say("reading BTF")
    structs, prototypes = struct_layouts(vml.data, [e.name for e in raw if e.kind == "text"])
    if not structs and config.get("DEBUG_INFO_BTF") == "y":
        raise DebError("CONFIG_DEBUG_INFO_BTF=y but vmlinux has no .BTF section")
    builtin_modinfo = img.get("modules.builtin.modinfo", b"")
    flavour = RELEASE.match(release)
    distro = "debian"
    return Profile(
        name=f"{distro}-{release}",
        release=release,
        version=uts["version"],
        vermagic=vermagic,
        config=config,
        exports=exports,
        module_exports=module_exports,
        certificates=certs,
        builtin=builtin_names(img.get("modules.builtin", b"").decode("utf-8", "replace")),
        builtin_modinfo=builtin_modinfo,
        builtin_sysfs=builtin_sysfs_dirs(vml, structs, builtin_modinfo),
        percpu_static_size=vml.percpu_static_size(),
        machine=uts["machine"],
        sections=sections,
        structs=structs,
        prototypes=Prototypes(prototypes),
        source={"importer": "debian", "importer_version": IMPORTER_VERSION,
                "image": image_deb.name,
                "headers": [h.name for h in headers_debs],
                "flavour": flavour[2] if flavour else ""},
    )


def check_against_symvers(raw, symvers) -> None:
    """vmlinux's export tables must agree with Module.symvers's vmlinux lines exactly."""
    ours = {e.name: (e.crc, e.gpl, e.namespace) for e in raw}
    theirs = {s.name: (s.crc, s.gpl, s.namespace) for s in symvers if s.owner == "vmlinux"}
    if ours == theirs:
        return
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    differ = sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
    parts = []
    for what, names in (("only in Module.symvers", missing), ("only in vmlinux", extra),
                        ("with different CRC/licence/namespace", differ)):
        if names:
            parts.append(f"{len(names)} {what} (e.g. {', '.join(names[:3])})")
    raise DebError("vmlinux exports do not match Module.symvers: " + "; ".join(parts) +
                   " -- are the image and headers packages of the same build?")


def imported_profile(release: str | None = None, suite: str | None = None,
                     out_dir: Path | None = None) -> Path:
    """The profile file of ``release`` (None: the current one of ``suite``), imported once with
    this importer into ``out_dir`` (default the user's profile directory) and reused after."""
    from . import PROFILE_SUFFIX
    release = release or current_release(suite)
    out = Path(out_dir) if out_dir is not None else profile_dir()
    path = out / f"debian-{release}{PROFILE_SUFFIX}"
    if path.exists():
        from . import read_profile_file
        try:
            stale = read_profile_file(path).source.get("importer_version") != IMPORTER_VERSION
        except KmodlabError:
            stale = True
        if stale:
            path.unlink()
    if not path.exists():
        got = fetch_packages(release, suite=suite)
        import_debian(got["image"], got["headers"], out)
    return path


def import_debian(image_deb: Path, headers_debs: list[Path], out_dir: Path | None = None,
                  log=None) -> Path:
    prof = build_profile(image_deb, headers_debs, log)
    out = Path(out_dir) if out_dir is not None else profile_dir()
    from . import PROFILE_SUFFIX
    return save_profile(prof, out / f"{prof.name}{PROFILE_SUFFIX}")


# -- fetching --------------------------------------------------------------------------------

def cache_dir(dest: Path | None = None) -> Path:
    """Where .debs are kept: ``dest``, else $KMODLAB_CACHE/debs, else ~/.cache/kmodlab/debs."""
    if dest is not None:
        return Path(dest)
    root = os.environ.get("KMODLAB_CACHE")
    if root:
        return Path(root) / "debs"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kmodlab" / "debs"


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise KmodlabError(f"{cmd[0]} not found: fetching Debian packages needs apt "
                           f"(or give the .deb files on the command line)") from None


# Debian's kernel releases name their distribution since Debian 13 ("6.12.118+deb13-amd64");
# Debian 12's are "6.1.0-57-amd64" (its own suite, the machine's).
SUITES = {"11": "bullseye", "12": "bookworm", "13": "trixie", "14": "forky"}
DEB_TAG = re.compile(r"\+deb(\d+)")


def suite_of(release: str) -> str | None:
    """The Debian suite that serves ``release`` ("trixie" for 6.12.118+deb13-amd64), or None
    for a release that does not say (then the machine's own package sources are asked)."""
    m = DEB_TAG.search(release)
    return SUITES.get(m[1]) if m else None


class Apt:
    """apt-get/apt-cache for one Debian suite.

    The machine's own suite uses its own configuration as it is.  Another suite (trixie on a
    bookworm machine) gets a private configuration under the cache directory: a sources file
    derived from the machine's own (same archives and keyring, the suite names changed), its own
    package lists and archive cache, and no dpkg status — the machine's sources stay as they are.
    """

    def __init__(self, suite: str | None = None, cache: Path | None = None):
        self.suite = suite
        self.root = None
        self.updated = False
        if suite is not None and suite not in host_suites():
            self.root = (cache or cache_dir()).parent / "apt" / suite
            self._configure()

    def _configure(self) -> None:
        host = host_sources()
        if not host:
            raise KmodlabError("cannot derive a package source for Debian "
                               f"'{self.suite}': no Debian entry in /etc/apt/sources.list(.d)")
        base = min(host_suites(), key=len)                   # "bookworm" of bookworm-updates
        text = re.sub(rf"\b{re.escape(base)}(?=[\s-]|$)", self.suite, host, flags=re.M)
        for d in ("etc", "lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        src = self.root / "etc" / f"{self.suite}.sources"
        if not src.exists() or src.read_text() != text:
            src.write_text(text)

    def options(self) -> list[str]:
        if self.root is None:
            return []
        r = self.root
        return ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={r}/etc",
                "-o", f"Dir::State::Lists={r}/lists", "-o", f"Dir::Cache={r}/cache",
                "-o", "Dir::State::status=/dev/null", "-o", "Debug::NoLocking=1"]

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return _run([tool, *self.options(), *args], cwd=cwd)

    def show(self, pkg: str) -> str | None:
        r = self.run("apt-cache", "show", "--no-all-versions", pkg)
        if r.returncode != 0 or not r.stdout.strip():
            return None
        return r.stdout

    def update(self) -> None:
        self.updated = True
        r = self.run("apt-get", "update")
        if r.returncode != 0:
            raise KmodlabError(f"apt-get update failed: {r.stderr.strip()[-300:]}")

    def show_updating(self, pkg: str) -> str:
        """apt-cache show, after an apt-get update when the lists do not know ``pkg`` yet (a
        private configuration's lists are read once per day at most)."""
        out = self.show(pkg)
        if out is None and not self.updated:
            self.update()
            out = self.show(pkg)
        if out is None:
            where = f" (suite {self.suite})" if self.suite else ""
            raise KmodlabError(f"the package registry does not know {pkg}{where}")
        return out

    def fresh(self) -> None:
        """Update a private configuration's lists when they are missing or a day old."""
        if self.root is None or self.updated:
            return
        lists = [p for p in (self.root / "lists").glob("*_Packages*")]
        import time
        if not lists or time.time() - min(p.stat().st_mtime for p in lists) > 86400:
            self.update()


def _read_host_sources() -> str:
    parts = []
    d = Path("/etc/apt/sources.list.d")
    for f in sorted(d.glob("*.sources")) if d.is_dir() else []:
        parts.append(f.read_text(errors="replace"))
    return "\n\n".join(parts)


def host_sources() -> str:
    """The machine's deb822 stanzas for Debian's own archive (those with 'debian' in their
    URIs and a Debian suite name), joined; '' when there are none."""
    keep = []
    for stanza in re.split(r"\n\s*\n", _read_host_sources()):
        suites = re.search(r"^Suites:(.*)$", stanza, re.M)
        uris = re.search(r"^URIs:(.*)$", stanza, re.M)
        if not suites or not uris or "debian" not in uris[1]:
            continue
        if any(s.split("-")[0] in SUITES.values() for s in suites[1].split()):
            keep.append(stanza.strip())
    return "\n\n".join(keep) + "\n" if keep else ""


def host_suites() -> set[str]:
    """The machine's own Debian suites ({"bookworm", "bookworm-updates", ...})."""
    out = set()
    for m in re.finditer(r"^Suites:(.*)$", host_sources(), re.M):
        out.update(m[1].split())
    if not out:
        try:
            for line in Path("/etc/apt/sources.list").read_text().splitlines():
                f = line.split()
                if len(f) >= 3 and f[0] == "deb":
                    out.add(f[2] if not f[1].startswith("[") else f[3])
        except OSError:
            pass
    return out


def _depends(show: str) -> list[str]:
    for line in show.splitlines():
        if line.startswith("Depends:"):
            return [alt.split()[0] for part in line[8:].split(",")
                    for alt in part.split("|")[:1] if alt.strip()]
    return []


def current_release(suite: str | None = None, flavour: str = "amd64") -> str:
    """The release the registry's linux-image-<flavour> metapackage points at now, in the
    machine's own suite or in ``suite`` ("trixie")."""
    apt = Apt(suite)
    apt.fresh()
    for dep in _depends(apt.show_updating(f"linux-image-{flavour}")):
        if dep.startswith("linux-image-") and dep != f"linux-image-{flavour}":
            return dep[len("linux-image-"):]
    raise KmodlabError(f"cannot tell which kernel linux-image-{flavour} depends on")


def _cached(cache: Path, pkg: str) -> Path | None:
    hits = sorted(cache.glob(f"{pkg}_*.deb"))
    return hits[-1] if hits else None


def _download(apt: Apt, cache: Path, pkg: str) -> Path:
    hit = _cached(cache, pkg)
    if hit is not None:
        return hit
    apt.fresh()
    apt.show_updating(pkg)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"downloading {pkg} into {cache}", file=sys.stderr)
    r = apt.run("apt-get", "download", pkg, cwd=cache)
    hit = _cached(cache, pkg)
    if r.returncode != 0 or hit is None:
        raise KmodlabError(f"apt-get download {pkg} failed: {r.stderr.strip()[-300:]}")
    return hit


def fetch_packages(release: str | None = None, dest: Path | None = None,
                   suite: str | None = None) -> dict:
    """Download (or reuse) linux-image-<rel>, linux-headers-<rel> and linux-headers-<abi>-common.

    ``release`` None means the one linux-image-amd64 depends on now (in the machine's suite, or
    in ``suite``).  A release of another Debian ("6.12.118+deb13-amd64") is fetched from its own
    suite through a private apt configuration.  Returns
    ``{"release": rel, "image": Path, "headers": [Path, ...], "cache": Path}``."""
    cache = cache_dir(dest)
    if release is None:
        release = current_release(suite)
    m = RELEASE.match(release)
    if not m:
        raise UsageError(f"'{release}' does not look like a Debian kernel release "
                         f"(e.g. 6.1.0-57-amd64 or 6.12.118+deb13-amd64)")
    apt = Apt(suite_of(release) or suite, cache)
    image = _download(apt, cache, f"linux-image-{release}")
    headers = [_download(apt, cache, f"linux-headers-{release}")]
    common = f"linux-headers-{m[1]}-common"
    if _cached(cache, common) is None:
        # the exact name comes from the headers package's Depends when apt knows it
        show = apt.show(f"linux-headers-{release}")
        for dep in _depends(show or ""):
            if dep.startswith("linux-headers-") and dep.endswith("-common"):
                common = dep
    headers.append(_download(apt, cache, common))
    return {"release": release, "image": image, "headers": headers, "cache": cache}


def extract_module_tree(release: str | None = None, dest: Path | None = None,
                        suite: str | None = None) -> Path:
    """The kernel's module tree (lib/modules/<release>, from /usr/lib/modules on Debian 13) from
    its linux-image package, extracted once into the cache; returns that directory."""
    got = fetch_packages(release, dest, suite)
    release = got["release"]
    root = got["cache"].parent / "trees" / release
    tree = root / "lib" / "modules" / release
    done = root / ".complete"
    if done.exists():
        return tree
    tmp = root.with_name(f".{release}.{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    for p, _ti, f in iter_deb_files(got["image"]):
        p = p.removeprefix("usr/")              # Debian 13 ships /usr/lib/modules (merged /usr)
        if not p.startswith(f"lib/modules/{release}/"):
            continue
        out = tmp / p
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(f.read())
    (tmp / ".complete").write_text(got["image"].name + "\n")
    if root.exists():
        shutil.rmtree(root)
    os.rename(tmp, root)
    return tree
