/* The C floor for `kmodlab check`: what any loader must do with each module file, written as
 * plainly and quickly as C allows, to measure kmodlab against.
 *
 *   check_floor [--verify CERT.der] EXPORTS.txt FILE...     (FILE "-": read names from stdin)
 *
 * Per file: read it; split off the module signature trailer (and, with --verify, check the
 * PKCS#7 signature against the certificate with OpenSSL, as the kernel checks it); parse the
 * ELF header and section table; lay the SHF_ALLOC sections out in one buffer (aligned) and copy
 * them; resolve every undefined symbol by name in a hash table of the kernel's and the tree's
 * exports; apply every RELA section aimed at an allocated section with x86-64's arithmetic
 * (zero-target and 32/32S overflow checks).  Prints files, relocations, unresolved symbols.
 * No kmodlab code, no kernel code: the benchmark's baseline only.
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef WITH_OPENSSL
#include <openssl/bio.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#endif

#define MAGIC "~Module signature appended~\n"

struct ent { const char *name; uint64_t addr; };
static struct ent *tab; static size_t tabmask;

static uint64_t fnv(const char *s) { uint64_t h = 1469598103934665603ULL; while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL; return h; }
static void put(const char *n, uint64_t a) { size_t i = fnv(n) & tabmask; while (tab[i].name) i = (i + 1) & tabmask; tab[i].name = n; tab[i].addr = a; }
static int get(const char *n, uint64_t *a) { size_t i = fnv(n) & tabmask; while (tab[i].name) { if (!strcmp(tab[i].name, n)) { *a = tab[i].addr; return 1; } i = (i + 1) & tabmask; } return 0; }

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb"); if (!f) return NULL;
    fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n + 1); if (fread(b, 1, n, f) != (size_t)n) { fclose(f); free(b); return NULL; }
    fclose(f); b[n] = 0; *len = n; return b;
}

#ifdef WITH_OPENSSL
static X509 *cert; static STACK_OF(X509) *certs;
static int verify(const unsigned char *img, size_t elflen, const unsigned char *sig, size_t siglen) {
    const unsigned char *p = sig; PKCS7 *p7 = d2i_PKCS7(NULL, &p, siglen); if (!p7) return 0;
    BIO *content = BIO_new_mem_buf(img, elflen);
    int ok = PKCS7_verify(p7, certs, NULL, content, NULL, PKCS7_NOVERIFY | PKCS7_BINARY | PKCS7_NOINTERN) == 1;
    BIO_free(content); PKCS7_free(p7); return ok;
}
#endif

static long nrel, nunres, nbad, nsigok;
static int do_verify;

static void one(const char *path) {
    size_t len; unsigned char *b = slurp(path, &len); if (!b) { nbad++; return; }
    size_t elflen = len, ml = strlen(MAGIC);
    if (len > ml + 12 && !memcmp(b + len - ml, MAGIC, ml)) {
        const unsigned char *t = b + len - ml - 12;
        uint32_t siglen = (uint32_t)t[8] << 24 | t[9] << 16 | t[10] << 8 | t[11];
        if (siglen + 12 + ml <= len) {
            elflen = len - ml - 12 - siglen;
#ifdef WITH_OPENSSL
            if (do_verify) nsigok += verify(b, elflen, b + elflen, siglen);
#endif
        }
    }
    Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
    if (elflen < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > elflen) { nbad++; free(b); return; }
    Elf64_Shdr *sh = (Elf64_Shdr *)(b + eh->e_shoff);
    uint64_t *addr = calloc(eh->e_shnum, sizeof *addr), size = 0;
    for (int i = 1; i < eh->e_shnum; i++) if (sh[i].sh_flags & SHF_ALLOC) {
        uint64_t a = sh[i].sh_addralign ? sh[i].sh_addralign : 1; size = (size + a - 1) & ~(a - 1); addr[i] = size; size += sh[i].sh_size; }
    unsigned char *mem = calloc(size + 1, 1); uint64_t base = 0xffffffffc0000000ULL;
    for (int i = 1; i < eh->e_shnum; i++) if ((sh[i].sh_flags & SHF_ALLOC) && sh[i].sh_type != SHT_NOBITS) memcpy(mem + addr[i], b + sh[i].sh_offset, sh[i].sh_size);
    Elf64_Sym *sym = NULL; size_t nsym = 0; const char *str = NULL;
    for (int i = 1; i < eh->e_shnum; i++) if (sh[i].sh_type == SHT_SYMTAB) { sym = (Elf64_Sym *)(b + sh[i].sh_offset); nsym = sh[i].sh_size / sizeof *sym; str = (const char *)b + sh[sh[i].sh_link].sh_offset; }
    uint64_t *val = calloc(nsym + 1, sizeof *val);
    for (size_t k = 1; k < nsym; k++) {
        if (sym[k].st_shndx == SHN_UNDEF) { if (!get(str + sym[k].st_name, &val[k]) && ELF64_ST_BIND(sym[k].st_info) != STB_WEAK) nunres++; }
        else if (sym[k].st_shndx < eh->e_shnum) val[k] = base + addr[sym[k].st_shndx] + sym[k].st_value;
        else val[k] = sym[k].st_value;
    }
    for (int i = 1; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_RELA || sh[i].sh_info >= eh->e_shnum || !(sh[sh[i].sh_info].sh_flags & SHF_ALLOC)) continue;
        Elf64_Shdr *t = &sh[sh[i].sh_info]; Elf64_Rela *r = (Elf64_Rela *)(b + sh[i].sh_offset); size_t n = sh[i].sh_size / sizeof *r;
        for (size_t k = 0; k < n; k++, nrel++) {
            uint32_t ty = ELF64_R_TYPE(r[k].r_info); uint64_t si = ELF64_R_SYM(r[k].r_info);
            if (si >= nsym || r[k].r_offset + 8 > t->sh_size + 8) { nbad++; continue; }
            unsigned char *loc = mem + addr[sh[i].sh_info] + r[k].r_offset; uint64_t P = base + addr[sh[i].sh_info] + r[k].r_offset;
            uint64_t v = val[si] + r[k].r_addend; int w;
            switch (ty) {
            case R_X86_64_NONE: continue;
            case R_X86_64_64: w = 8; break;
            case R_X86_64_32: w = 4; if (v != (uint32_t)v) nbad++; break;
            case R_X86_64_32S: w = 4; if ((int64_t)v != (int32_t)v) nbad++; break;
            case R_X86_64_PC32: case R_X86_64_PLT32: v -= P; w = 4; break;
            case R_X86_64_PC64: v -= P; w = 8; break;
            default: nbad++; continue;
            }
            uint64_t old = 0; memcpy(&old, loc, w); if (old) { nbad++; continue; }
            memcpy(loc, &v, w);
        }
    }
    free(val); free(mem); free(addr); free(b);
}

int main(int argc, char **argv) {
    int a = 1;
    if (a < argc && !strcmp(argv[a], "--verify")) {
#ifdef WITH_OPENSSL
        size_t n; unsigned char *d = slurp(argv[a + 1], &n); const unsigned char *p = d;
        cert = d2i_X509(NULL, &p, n); if (!cert) { fprintf(stderr, "bad certificate\n"); return 2; }
        certs = sk_X509_new_null(); sk_X509_push(certs, cert); do_verify = 1;
#else
        fprintf(stderr, "built without OpenSSL\n"); return 2;
#endif
        a += 2;
    }
    if (argc - a < 1) { fprintf(stderr, "usage: check_floor [--verify CERT.der] EXPORTS.txt FILE...|-\n"); return 2; }
    size_t elen; char *ex = (char *)slurp(argv[a++], &elen); if (!ex) return 2;
    size_t lines = 0; for (size_t i = 0; i < elen; i++) lines += ex[i] == '\n';
    for (tabmask = 1; tabmask < 2 * lines + 2; tabmask <<= 1); tab = calloc(tabmask, sizeof *tab); tabmask--;
    for (char *l = ex; *l; ) { char *nl = strchr(l, '\n'); if (!nl) break; *nl = 0; char *sp = strchr(l, ' ');
        if (sp) { *sp = 0; put(sp + 1, strtoull(l, NULL, 16)); } l = nl + 1; }
    long files = 0; char line[4096];
    struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
    if (a < argc && !strcmp(argv[a], "-")) { while (fgets(line, sizeof line, stdin)) { line[strcspn(line, "\n")] = 0; one(line); files++; } }
    else for (; a < argc; a++, files++) one(argv[a]);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%ld files, %ld relocations, %ld unresolved, %ld anomalies, %ld signatures verified, %.6f seconds\n",
           files, nrel, nunres, nbad, nsigok, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
