"""Boot Debian's real kernel (6.1 or 6.12) under QEMU (TCG) and run a script in it: the live-path
oracle.

The recipe is /work/shared/reference/qemu-oracle.md §C, measured there:

1. :func:`prepare` (cached under ``~/.cache/kmodlab/oracle/<release>/``): unpack the
   ``linux-image-<release>`` .deb (``boot/`` and ``lib/modules/``, or ``usr/lib/modules/``
   from Debian 13 on), extract the ELF ``vmlinux`` from the XZ (6.1) or zstd (6.12) payload of
   ``vmlinuz`` (booted directly through PVH: ~4 s faster under TCG than the bzImage), and build
   a busybox initramfs holding the 9p module stack (computed from the tree: the modules among
   virtio_pci, 9pnet_virtio, 9p and their ``depends=``; .ko.xz decompressed for busybox insmod)
   and an ``/init`` that mounts the host's ``/`` read-only at ``/host`` plus one writable
   output share.
2. :func:`run_in_guest`: write the script into a fresh output directory, boot
   ``qemu-system-x86_64 -accel tcg`` under a timeout, and let ``/init`` run the script inside
   ``chroot /host`` (so the guest's Python is this host's interpreter and sees this tree).
   Results are read back from the output directory, never parsed from the serial console:
   ``guest.rc``, ``stdout``, ``stderr`` and whatever files the script wrote to ``$OUT``.

Only one VM runs at a time (a lock file); the host needs qemu-system-x86 and busybox-static.
"""
from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_RELEASE = os.environ.get("KMODLAB_ORACLE_RELEASE", "6.1.0-56-amd64")
CACHE = Path(os.environ.get("KMODLAB_ORACLE_CACHE",
                            Path.home() / ".cache" / "kmodlab" / "oracle"))
DEBS = Path(os.environ.get("KMODLAB_DEBS", Path.home() / ".cache" / "kmodlab" / "debs"))
SRC = Path(__file__).resolve().parents[2]          # …/src, put on the guest's PYTHONPATH
REPO = SRC.parent                                   # the checkout, shared on its own: it may
                                                    # live under /tmp, which the guest hides

# The 9p stack of 6.1 in dependency order (modinfo -F depends), loaded by /init.  Other
# releases compute theirs from the tree (:func:`ninep_stack`; 6.12 has virtio built in and
# fscache merged into netfs: netfs 9pnet 9pnet_virtio 9p).
NINEP_STACK = ["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
               "virtio_pci", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p"]
NINEP_ROOTS = ["virtio_pci", "9pnet_virtio", "9p"]   # what /init needs, if they are modules

INIT_TEMPLATE = r"""#!/bin/busybox sh
# kmodlab oracle /init: load the 9p stack, mount host / read-only at /host and the output
# share read-write at /host$guest_out, run $guest_script inside chroot /host, power off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "=== SHELL-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in @STACK@; do
  insmod /lib/modules/$m.ko || echo "=== INSMOD-FAIL $m"
done
O=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $O,ro,cache=loose hostroot /host || { echo "=== MOUNT-FAIL hostroot"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t tmpfs tmpfs /host/run
mount -t tmpfs tmpfs /host/tmp
REPO=$(sed -n 's/.*guest_repo=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -n "$REPO" ] && { mkdir -p /host$REPO 2>/dev/null; mount -t 9p -o $O,ro,cache=loose reposhare /host$REPO || echo "=== MOUNT-FAIL reposhare"; }
OUTDIR=$(sed -n 's/.*guest_out=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -n "$OUTDIR" ] && { mount -t 9p -o $O outshare /host$OUTDIR || echo "=== MOUNT-FAIL outshare"; }
echo "=== 9P-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
SCRIPT=$(sed -n 's/.*guest_script=\([^ ]*\).*/\1/p' /proc/cmdline)
chroot /host /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root /bin/sh -c "$SCRIPT"
echo "=== GUEST-RC=$? uptime=$(cut -d' ' -f1 /proc/uptime)"
[ -n "$OUTDIR" ] && umount /host$OUTDIR
sync
poweroff -f
"""


def init_script(stack: list[str] | None = None) -> str:
    """/init for a 9p stack (default: 6.1's)."""
    return INIT_TEMPLATE.replace("@STACK@", " ".join(stack or NINEP_STACK))


INIT = init_script()        # 6.1's /init, unchanged

# Runs inside the chroot: the environment the user's script sees, and its rc into guest.rc.
WRAPPER = """#!/bin/sh
export OUT='{out}' KREL='{release}' MODDIR='{moddir}' PYTHON='{python}'
export PYTHONPATH='{src}' PYTHONDONTWRITEBYTECODE=1 KMODLAB_ORACLE_GUEST=1 TMPDIR=/tmp
cd "$OUT"
echo "$(cut -d' ' -f1 /proc/uptime)" > "$OUT/uptime.start"
/bin/sh "$OUT/script.sh" > "$OUT/stdout" 2> "$OUT/stderr"
echo $? > "$OUT/guest.rc"
echo "$(cut -d' ' -f1 /proc/uptime)" > "$OUT/uptime.end"
sync
"""


class OracleError(RuntimeError):
    """The oracle could not be prepared or the VM could not be run."""


@dataclass
class GuestResult:
    rc: int | None                      # the script's exit status (None: it never finished)
    files: dict[str, bytes]             # every file in the output dir, by relative path
    serial_log: str                     # the console, for diagnosis only
    seconds: float = 0.0                # wall time of the QEMU run
    timed_out: bool = False
    qemu_rc: int | None = None
    outdir: str = ""
    timings: dict = field(default_factory=dict)   # guest uptimes: script start/end

    @property
    def stdout(self) -> str:
        return self.files.get("stdout", b"").decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.files.get("stderr", b"").decode(errors="replace")

    def text(self, name: str) -> str:
        return self.files[name].decode(errors="replace")

    def json(self, name: str):
        return json.loads(self.files[name])

    def check(self) -> "GuestResult":
        """Raise OracleError with the evidence unless the script finished with rc 0."""
        if self.rc != 0:
            raise OracleError(f"guest script rc={self.rc} timed_out={self.timed_out} "
                              f"qemu_rc={self.qemu_rc}\n--- stderr\n{self.stderr[-3000:]}"
                              f"\n--- serial\n{self.serial_log[-3000:]}")
        return self


@dataclass
class Prepared:
    release: str
    root: Path            # the unpacked image package (boot/, lib/modules/<release>/)
    vmlinux: Path
    initrd: Path

    @property
    def moddir(self) -> Path:
        return module_dir(self.root, self.release)

    def module(self, name: str) -> Path:
        """Path of an in-tree module by name (crc7 → …/kernel/lib/crc7.ko)."""
        path = module_index(self.moddir).get(name.replace("-", "_"))
        if path is None:
            raise OracleError(f"module {name} not in {self.moddir}")
        return path


_INDEX: dict[Path, dict[str, Path]] = {}


def module_dir(root: Path, release: str) -> Path:
    """The module tree of an unpacked image package: ``lib/modules/<release>`` (Debian 12) or
    ``usr/lib/modules/<release>`` (Debian 13, merged /usr)."""
    usr = root / "usr" / "lib" / "modules" / release
    return usr if usr.is_dir() else root / "lib" / "modules" / release


def read_module(path: Path | str) -> bytes:
    """A module file's ELF bytes: .ko as is, .ko.xz / .ko.zst / .ko.gz decompressed."""
    data = Path(path).read_bytes()
    name = str(path)
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def ninep_stack(moddir: Path) -> list[str]:
    """The modules /init must insmod for 9p over virtio-pci, in load order: those of
    :data:`NINEP_ROOTS` that are modules in this tree, each after its ``.modinfo`` depends=
    (built-ins, listed in modules.builtin, are not in the tree and need nothing).  6.1 gives
    :data:`NINEP_STACK` (kept in its recorded order)."""
    from .. import elf
    idx = module_index(moddir)
    deps: dict[str, list[str]] = {}

    def depends(n: str) -> list[str]:
        if n not in deps:
            info = elf.parse_modinfo(read_module(idx[n]))
            deps[n] = [d.replace("-", "_") for k, v in info if k == "depends"
                       for d in v.split(",") if d]
        return deps[n]

    order: list[str] = []

    def visit(n: str) -> None:
        if n in order or n not in idx:
            return
        for d in depends(n):
            visit(d)
        order.append(n)

    for r in NINEP_ROOTS:
        visit(r)
    if "9p" not in order or "9pnet_virtio" not in order:
        raise OracleError(f"{moddir} has no 9p / 9pnet_virtio modules (this kernel has no 9p)")
    if set(order) == set(NINEP_STACK):
        return list(NINEP_STACK)
    return order


def module_index(moddir: Path) -> dict[str, Path]:
    """Module name (with '_') → .ko path, by walking the tree (the .deb ships no modules.dep)."""
    if moddir not in _INDEX:
        idx = {}
        for dirpath, _dirs, names in os.walk(moddir / "kernel"):
            for n in names:
                if ".ko" in n:
                    idx.setdefault(n.split(".ko", 1)[0].replace("-", "_"), Path(dirpath) / n)
        _INDEX[moddir] = idx
    return _INDEX[moddir]


# --- preparation (cached) ----------------------------------------------------------------------

def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _find_deb(release: str) -> Path:
    debs = sorted(DEBS.glob(f"linux-image-{release}_*.deb"))
    if debs:
        return debs[-1]
    DEBS.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["apt-get", "download", f"linux-image-{release}"], cwd=DEBS,
                       capture_output=True, text=True)
    debs = sorted(DEBS.glob(f"linux-image-{release}_*.deb"))
    if not debs:
        raise OracleError(f"no linux-image-{release} .deb in {DEBS} and apt-get download "
                          f"failed: {r.stderr.strip()}")
    return debs[-1]


def _deb_data_member(deb: Path) -> tuple[str, bytes]:
    """The data.tar.* member of a .deb (an ar archive), without dpkg."""
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise OracleError(f"{deb}: not a .deb (ar) file")
        while True:
            hdr = f.read(60)
            if len(hdr) < 60:
                break
            name = hdr[:16].decode().strip().rstrip("/")
            size = int(hdr[48:58])
            data = f.read(size)
            if size % 2:
                f.read(1)
            if name.startswith("data.tar"):
                return name, data
    raise OracleError(f"{deb}: no data.tar member")


def _unpack_image(deb: Path, root: Path, release: str) -> None:
    """Unpack boot/ and (usr/)lib/modules/<release>/ of the image package into root."""
    name, data = _deb_data_member(deb)
    mode = {"data.tar.xz": "r:xz", "data.tar.gz": "r:gz", "data.tar": "r:"}.get(name)
    if mode is None and name == "data.tar.zst":
        import zstandard                               # only the host needs this
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        mode = "r:"
    if mode is None:
        raise OracleError(f"{deb}: unsupported {name}")
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root.parent))
    tmp.chmod(0o755)                                 # the guest's unprivileged tests read it
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.lstrip("./").startswith(("boot/", f"lib/modules/{release}/",
                                                      f"usr/lib/modules/{release}/"))]
        tar.extractall(tmp, members=members, filter="tar")
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)


def _unzstd(data: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        zstd = shutil.which("zstd")
        if not zstd:
            raise OracleError("a zstd vmlinuz needs python3-zstandard or the zstd tool")
        # the payload is followed by the bzImage trailer: zstd stops at the frame's end
        p = subprocess.run([zstd, "-dc", "-q"], input=data, capture_output=True)
        return p.stdout
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The ELF vmlinux inside a bzImage: the compressed stream after the setup code (booted via
    PVH).  XZ (Debian 12's 6.1) or zstd (Debian 13's 6.12, CONFIG_KERNEL_ZSTD)."""
    formats = ((b"\xfd7zXZ\x00", lambda d: lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(d),
                lzma.LZMAError),
               (b"\x28\xb5\x2f\xfd", _unzstd, Exception))
    for magic, decompress, error in formats:
        pos = vmlinuz.find(magic)
        while pos >= 0:
            try:
                out = decompress(vmlinuz[pos:])
                if out[:4] == b"\x7fELF":
                    return out
            except error:
                pass
            pos = vmlinuz.find(magic, pos + 1)
    raise OracleError("no XZ- or zstd-compressed ELF payload in vmlinuz "
                      "(not a generic Debian kernel?)")


def _cpio_newc(entries: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A newc cpio archive of (name, mode, data, rdevmajor, rdevminor)."""
    out = io.BytesIO()
    ino = 1

    def pad(n):
        out.write(b"\0" * ((4 - n % 4) % 4))

    for name, mode, data, rmaj, rmin in entries + [("TRAILER!!!", 0, b"", 0, 0)]:
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(nb), 0))
        out.write(hdr.encode() + nb)
        pad(110 + len(nb))
        out.write(data)
        pad(len(data))
        ino += 1
    return out.getvalue()


def build_initramfs(moddir: Path, busybox: Path, stack: list[str] | None = None) -> bytes:
    """The busybox initramfs with /init and the 9p stack's modules as /lib/modules/<m>.ko
    (decompressed: busybox insmod passes the file to init_module as it is)."""
    stack = stack or NINEP_STACK
    S_IFDIR, S_IFREG, S_IFCHR, S_IFLNK = 0o040000, 0o100000, 0o020000, 0o120000
    entries = [(d, S_IFDIR | 0o755, b"", 0, 0)
               for d in ("bin", "dev", "proc", "sys", "host", "lib", "lib/modules", "tmp", "run")]
    entries += [("dev/console", S_IFCHR | 0o600, b"", 5, 1),
                ("dev/null", S_IFCHR | 0o666, b"", 1, 3),
                ("bin/busybox", S_IFREG | 0o755, busybox.read_bytes(), 0, 0),
                ("bin/sh", S_IFLNK | 0o777, b"busybox", 0, 0),
                ("init", S_IFREG | 0o755, init_script(stack).encode(), 0, 0)]
    deps = module_index(moddir)
    for m in stack:
        if m not in deps:
            raise OracleError(f"{m}.ko is not in {moddir} (this kernel has no 9p modules)")
        entries.append((f"lib/modules/{m}.ko", S_IFREG | 0o644, read_module(deps[m]), 0, 0))
    return gzip.compress(_cpio_newc(entries), compresslevel=6, mtime=0)


def _busybox() -> Path:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(p).exists():
            out = subprocess.run(["file", "-L", p], capture_output=True, text=True).stdout \
                if shutil.which("file") else "statically linked"
            if "dynamically" not in out:
                return Path(p)
    raise OracleError("a static busybox is needed: apt-get install busybox-static")


def prepare(release: str | None = None) -> Prepared:
    """Unpack the kernel package, extract vmlinux and build the initramfs (each step cached)."""
    release = release or DEFAULT_RELEASE
    base = CACHE / release
    base.mkdir(parents=True, exist_ok=True)
    root = base / "image"
    with _lock(base / ".prepare.lock"):
        stamp = root / ".complete"
        if not stamp.exists():
            _unpack_image(_find_deb(release), root, release)
            stamp.write_text(release + "\n")
        vmlinux = base / f"vmlinux-{release}"
        if not vmlinux.exists():
            vmlinuz = (root / "boot" / f"vmlinuz-{release}").read_bytes()
            _atomic_write(vmlinux, extract_vmlinux(vmlinuz))
        busybox = _busybox()
        moddir = module_dir(root, release)
        stack = ninep_stack(moddir)
        init = init_script(stack)
        key = hashlib.sha256(init.encode() + busybox.read_bytes()).hexdigest()[:12]
        initrd = base / f"initrd-9p-{key}.cpio.gz"
        if not initrd.exists():
            _atomic_write(initrd, build_initramfs(moddir, busybox, stack))
    return Prepared(release, root, vmlinux, initrd)


# --- running ----------------------------------------------------------------------------------

class _lock:
    """An exclusive flock on a file: one VM (or one preparation) at a time."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def guest_python() -> str:
    """The interpreter the guest runs: this one (the guest chroots into this host's /)."""
    return os.path.realpath(sys.executable)


def qemu_command(prep: Prepared, outdir: Path, script_path: Path, memory: str = "512M",
                 smp: int = 1, qemu: str = "qemu-system-x86_64", append: str = "") -> list[str]:
    return [qemu, "-accel", "tcg", "-cpu", "max", "-smp", str(smp), "-m", memory,
            "-nographic", "-no-reboot", "-nic", "none",
            "-kernel", str(prep.vmlinux), "-initrd", str(prep.initrd),
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                       "multidevs=remap",
            "-virtfs", f"local,path={outdir},mount_tag=outshare,security_model=none",
            "-virtfs", f"local,path={REPO},mount_tag=reposhare,security_model=none,readonly=on,"
                       "multidevs=remap",
            "-append", f"console=ttyS0 panic=-1 quiet {append + ' ' if append else ''}"
                       f"guest_script={script_path} guest_out={outdir} guest_repo={REPO}"]


def run_in_guest(script: str, timeout: float = 120, release: str | None = None,
                 files: dict[str, bytes | str] | None = None, outdir: str | Path | None = None,
                 memory: str = "512M", smp: int = 1, append: str = "") -> GuestResult:
    """Boot the kernel, run ``script`` (POSIX sh) as root in ``chroot /host``, power off.

    The script sees ``$OUT`` (the writable output dir, also its cwd), ``$PYTHON`` (this host's
    interpreter), ``$PYTHONPATH`` (kmodlab's src), ``$KREL`` and ``$MODDIR`` (the unpacked
    Debian module tree).  ``files`` are written into ``$OUT`` first.  Every file in ``$OUT``
    comes back in :attr:`GuestResult.files`.  ``append`` adds kernel command-line options
    (e.g. ``nokaslr``).
    """
    prep = prepare(release)
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise OracleError("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
    if outdir is None:
        runs = CACHE / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    else:
        out = Path(outdir).resolve()
        if str(out).startswith(("/tmp/", "/run/", "/proc/", "/sys/", "/dev/")) or " " in str(out):
            raise OracleError(f"output dir {out} is hidden by the guest's own mounts "
                              f"(or has a space)")
        out.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data.encode() if isinstance(data, str) else data)
    (out / "script.sh").write_text(script)
    wrapper = out / "run.sh"
    wrapper.write_text(WRAPPER.format(out=out, release=prep.release, moddir=prep.moddir,
                                      python=guest_python(), src=SRC))
    wrapper.chmod(0o755)
    cmd = ["timeout", "-k", "5", str(int(timeout))] + \
        qemu_command(prep, out, wrapper, memory=memory, smp=smp, qemu=qemu, append=append)
    serial_path = out.parent / f"{out.name}.serial"
    t_wait = time.monotonic()
    with _lock(CACHE / "qemu.lock"):
        t0 = time.monotonic()
        lock_wait = t0 - t_wait
        with open(serial_path, "wb") as serial:
            try:
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=serial,
                                   stderr=subprocess.STDOUT, timeout=timeout + 20)
                qemu_rc = p.returncode
            except subprocess.TimeoutExpired:
                qemu_rc = None
        seconds = time.monotonic() - t0
    serial_log = serial_path.read_text(errors="replace")
    result_files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name not in ("run.sh",):
            result_files[str(p.relative_to(out))] = p.read_bytes()
    rc = None
    if "guest.rc" in result_files:
        try:
            rc = int(result_files["guest.rc"].strip())
        except ValueError:
            rc = None
    timings = {"lock_wait": round(lock_wait, 2)}
    for k in ("start", "end"):
        v = result_files.get(f"uptime.{k}")
        if v:
            timings[f"guest_uptime_{k}"] = float(v.strip())
    for line in serial_log.splitlines():
        for tag in ("SHELL-READY", "9P-READY"):
            if line.startswith(f"=== {tag} uptime="):
                timings[tag] = float(line.split("=")[-1])
    return GuestResult(rc=rc, files=result_files, serial_log=serial_log, seconds=seconds,
                       timed_out=qemu_rc in (None, 124, 137), qemu_rc=qemu_rc, outdir=str(out),
                       timings=timings)


def run_python_in_guest(code: str, timeout: float = 120, release: str | None = None,
                        args: list[str] | None = None, **kw) -> GuestResult:
    """Run Python source in the guest with this host's interpreter (kmodlab importable)."""
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in (args or []))
    files = dict(kw.pop("files", None) or {})
    files["script.py"] = code
    return run_in_guest(f'exec "$PYTHON" "$OUT/script.py" {quoted}\n', timeout=timeout,
                        release=release, files=files, **kw)


class Oracle:
    """Object form for fixtures: ``Oracle(release).run(script)`` / ``.run_python(code)``."""

    def __init__(self, release: str | None = None, timeout: float = 120):
        self.release = release or DEFAULT_RELEASE
        self.timeout = timeout
        self.prepared = prepare(self.release)

    def run(self, script: str, **kw) -> GuestResult:
        kw.setdefault("timeout", self.timeout)
        return run_in_guest(script, release=self.release, **kw)

    def run_python(self, code: str, **kw) -> GuestResult:
        kw.setdefault("timeout", self.timeout)
        return run_python_in_guest(code, release=self.release, **kw)


# --- the recorded oracle ---------------------------------------------------------------------

RECORD_SCRIPT = '"$PYTHON" -S -m kmodlab.oracle.guest_cases "$OUT/oracle.json" {cli}\n'


def oracle_name(release: str | None = None) -> str:
    """tests/data file name for a release: 6.1.0-56-amd64 → oracle_6.1.0-56.json."""
    rel = release or DEFAULT_RELEASE
    return f"oracle_{rel.removesuffix('-amd64')}.json"


def record_oracle(release: str | None = None, cli: bool = True,
                  timeout: float = 150) -> tuple[dict, GuestResult]:
    """Boot once, run kmodlab.oracle.guest_cases (and the --live tools when ``cli``), and return
    (the normalized recording, the raw GuestResult: oracle.json, cli.json, timings)."""
    from .guest_cases import normalize
    r = run_in_guest(RECORD_SCRIPT.format(cli="--cli" if cli else ""), timeout=timeout,
                     release=release).check()
    return normalize(r.json("oracle.json")), r
