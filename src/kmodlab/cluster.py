"""`kmodlab check --cluster ADDRESS`: the profile × module matrix fanned out over Dask.

Why Dask (``pip install 'kmodlab[cluster]'``): it is pure Python, its scheduler and workers are
one `pip install` and one command each (``dask scheduler``, ``dask worker ADDRESS``), and a
`LocalCluster` runs the same code path on one machine — what CI tests.  Ray would bring a C++
runtime of several hundred MB and its own object store for a job whose inputs are files and
whose outputs are small records.

The work goes out in two waves, as the local pool does: (1) each chunk of files → its exports
(they do not depend on the kernel); (2) each (profile, chunk) → CheckResults, the tree's exports
and every profile's file broadcast to the workers once.  Workers read the module files by path:
on a real cluster the tree must be on a shared file system at the same path.  Profiles travel as
bytes, so workers need none installed.
"""
from __future__ import annotations

from .errors import UsageError

_checkers: dict = {}        # worker process: (profile key) → Checker with the tree's exports


def _client(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--cluster needs Dask: pip install 'kmodlab[cluster]'") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {e}") from None


def _exports_chunk(files: list[str]):
    from .check import _exports_of
    return [_exports_of(f) for f in files]


def _check_chunk(key: str, blob: bytes, files_exports, chunk: list[str], run_init: bool = False):
    from .check import Checker
    from .profile import Profile, _decompress
    c = _checkers.get(key)
    if c is None:
        c = Checker(Profile.from_bytes(_decompress(blob, key)))
        for f, exp in zip(*files_exports):
            c.add_exports(f, exp)
        if run_init:
            c.enable_run_init(files_exports[0])
        while len(_checkers) >= 4:          # a few profiles' checkers per worker at a time
            _checkers.pop(next(iter(_checkers)))
        _checkers[key] = c
    return [c.check_file(f) for f in chunk]


def check_matrix_dask(address: str, profiles: list, files: list[str], progress=None,
                      chunk: int = 64, run_init: bool = False):
    """(profile, CheckResult) in check_matrix's order, computed on the Dask cluster at
    ``address``."""
    import uuid
    client = _client(address)
    run = uuid.uuid4().hex[:12]                 # workers' checkers are per run (its tree)
    try:
        chunks = [files[i:i + chunk] for i in range(0, len(files), chunk)] or [[]]
        exports = [e for part in client.gather(client.map(_exports_chunk, chunks, pure=False))
                   for e in part]
        fx = client.scatter((files, exports), broadcast=True, hash=False)
        total, done = len(files) * len(profiles), 0
        for prof in profiles:
            blob = prof.path.read_bytes()
            key = f"{run}:{prof.name}"
            pblob = client.scatter(blob, broadcast=True, hash=False)
            futs = [client.submit(_check_chunk, key, pblob, fx, c, run_init, pure=False) for c in chunks]
            for fut in futs:
                for r in fut.result():
                    done += 1
                    yield prof, r
                    if progress:
                        progress(done, total)
    finally:
        client.close()
