"""Whole pages as struct page (emu/models/page.py), and small kernel tables modules install
into: nfs_ssc_client_tbl (nfs_ssc.py), the MCE decoder chain (notifier.py), edac_get_owner,
nf_ct_zone_dflt, fips_enabled, efi's flags — small C programs against the models."""
from __future__ import annotations

import pytest

from kmodlab.emu import Unmodelled
from test_emu_models import _exports, run  # noqa: F401
from test_emu_support import needs_gcc

NAMES = ["alloc_pages", "__free_pages", "folio_alloc", "mempool_alloc_pages",
         "mempool_free_pages", "nfs_ssc_register", "nfs_ssc_unregister", "nfs42_ssc_register",
         "nfs42_ssc_unregister", "mce_register_decode_chain", "mce_unregister_decode_chain",
         "edac_get_owner"]
EX = _exports(*[(n, 0xFFFFFFFF81B00000 + 0x40 * i) for i, n in enumerate(NAMES)],
              ("nfs_ssc_client_tbl", 0xFFFFFFFF82F00000, "bss"),
              ("nf_ct_zone_dflt", 0xFFFFFFFF82E00000, "rodata"),
              ("fips_enabled", 0xFFFFFFFF82F01000, "bss"),
              ("efi", 0xFFFFFFFF82F02000, "data"))

HEADER = r'''
struct page { unsigned long flags; void *a[2]; void *mapping; unsigned long index, private;
              int _mapcount, _refcount; long rest; };
extern unsigned long vmemmap_base, page_offset_base;
struct page *alloc_pages(unsigned int, unsigned int);
void __free_pages(struct page *, unsigned int);
void *folio_alloc(unsigned int, unsigned int);
void *mempool_alloc_pages(unsigned int, void *);
void mempool_free_pages(void *, void *);
void nfs_ssc_register(const void *); void nfs_ssc_unregister(const void *);
void nfs42_ssc_register(const void *); void nfs42_ssc_unregister(const void *);
extern struct { const void *nfs4, *nfs; } nfs_ssc_client_tbl;
struct notifier_block { void *call; struct notifier_block *next; int priority; };
void mce_register_decode_chain(struct notifier_block *);
void mce_unregister_decode_chain(struct notifier_block *);
const char *edac_get_owner(void);
extern const struct { unsigned short id; unsigned char flags, dir; } nf_ct_zone_dflt;
extern int fips_enabled;
extern struct { unsigned long a; unsigned int runtime_version, runtime_supported_mask;
                char pad[240]; unsigned long flags; } efi;
long r[32];
#define page_address(p) ((void *)(page_offset_base + (((unsigned long)(p) - vmemmap_base) / 64) * 4096))
'''
EX.update(_exports(("vmemmap_base", 0xFFFFFFFF82D00000, "data"),
                   ("page_offset_base", 0xFFFFFFFF82D00008, "data")))


def _r(b, n):
    return [v - (1 << 64) if v >> 63 else v
            for v in (b.mm.read_u(b.syms["r"] + 8 * i, 8) for i in range(n))]


@needs_gcc
def test_alloc_pages_gives_a_struct_page_of_the_vmemmap():
    """alloc_pages returns the vmemmap's struct page of a page-aligned direct-map block
    (page_address() inline arithmetic finds the memory, writable), _refcount 1, _mapcount -1;
    an order-1 block's second page has _refcount 0; __free_pages drops the reference and
    frees; mempool's page allocators pass the order as pool_data."""
    src = HEADER + r'''
    long f(void) {
        struct page *p = alloc_pages(0xcc0 | 0x100, 0);
        char *v = page_address(p);
        r[0] = ((unsigned long)p - vmemmap_base) % 64 == 0 && (unsigned long)p > vmemmap_base;
        r[1] = ((unsigned long)v & 4095) == 0;
        v[0] = 7; v[4095] = 9; r[2] = v[0] + v[4095] + v[100];
        r[3] = p->_refcount; r[4] = p->_mapcount; r[5] = p->mapping == 0;
        struct page *q = alloc_pages(0xcc0, 1);
        r[6] = q[0]._refcount; r[7] = q[1]._refcount;
        r[8] = page_address(&q[1]) == (char *)page_address(q) + 4096;
        __free_pages(p, 0); __free_pages(q, 1);
        r[9] = p->_refcount;
        struct page *m = mempool_alloc_pages(0xcc0, (void *)2);
        r[10] = m[0]._refcount; r[11] = m[3]._refcount;
        mempool_free_pages(m, (void *)2);
        return 0;
    }'''
    _ret, _log, emu, b = run(src, EX)
    assert _r(b, 12) == [1, 1, 16, 1, -1, 1, 1, 0, 1, 0, 1, 0]
    assert emu.state["pages"] == {}


@needs_gcc
def test_freeing_a_free_page_and_large_folios():
    src = HEADER + r'''
    long f(void) { struct page *p = alloc_pages(0xcc0, 0); __free_pages(p, 0); __free_pages(p, 0); return 0; }'''
    with pytest.raises(Exception) as e:
        run(src, EX)
    assert "refcount" in str(e.value) or "BUG" in str(e.value)
    src = HEADER + r'''long f(void) { return (long)folio_alloc(0xcc0, 2); }'''
    with pytest.raises(Unmodelled, match="folio_alloc"):
        run(src, EX)


@needs_gcc
def test_kernel_tables_modules_install_into():
    """nfs_ssc_register / nfs42_ssc_register fill the table's two slots, an unregister with
    other ops leaves it; the MCE decoder chain takes a block of priority 0..7 and refuses
    another by name; edac_get_owner is NULL (no memory controller was ever added);
    nf_ct_zone_dflt is {0, 0, dir 3}; fips_enabled is 0; a BIOS-booted machine's efi.flags
    and runtime_supported_mask are 0."""
    src = HEADER + r'''
    int a, b;
    struct notifier_block nb = { 0, 0, 3 };
    long f(void) {
        nfs_ssc_register(&a); nfs42_ssc_register(&b);
        r[0] = nfs_ssc_client_tbl.nfs == &a && nfs_ssc_client_tbl.nfs4 == &b;
        nfs_ssc_unregister(&b);
        r[1] = nfs_ssc_client_tbl.nfs == &a;
        nfs_ssc_unregister(&a); nfs42_ssc_unregister(&b);
        r[2] = nfs_ssc_client_tbl.nfs == 0 && nfs_ssc_client_tbl.nfs4 == 0;
        mce_register_decode_chain(&nb);
        mce_unregister_decode_chain(&nb);
        r[3] = edac_get_owner() == 0;
        r[4] = nf_ct_zone_dflt.id; r[5] = nf_ct_zone_dflt.dir;
        r[6] = fips_enabled;
        r[7] = efi.flags; r[8] = efi.runtime_supported_mask;
        return 0;
    }'''
    state = {}
    _ret, _log, _emu, b = run(src, EX, state=state)
    assert _r(b, 9) == [1, 1, 1, 1, 0, 3, 0, 0, 0]
    assert state["notifiers"]["mce_decoder"] == []
    src = HEADER + r'''
    struct notifier_block nb = { 0, 0, 9 };
    long f(void) { mce_register_decode_chain(&nb); return 0; }'''
    with pytest.raises(Unmodelled, match="priority 9"):
        run(src, EX)
