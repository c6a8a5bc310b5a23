/*
 * icount: a QEMU TCG plugin that counts the instructions a firmware executes, in total and
 * inside one function, for mend's firmware benchmark (`cargo bench -p mend-tests --bench
 * firmware`).
 *
 * Debian's qemu-system-arm 7.2 exports the plugin API (version 1) but ships no header, so the
 * few declarations used here are written out below; they match QEMU 7.2's qemu-plugin.h.
 *
 * Arguments (`-plugin ./libicount.so,arg=fn=0x...,arg=out=PATH`):
 *   fn=ADDR   entry address of the function to measure (Thumb bit ignored). The function is
 *             "entered" when that address executes and "left" when execution reaches the
 *             instruction after any `bl` that calls it, so a function that is called, not
 *             inlined, is measured exactly, callees and interrupts during it included.
 *   out=PATH  where to write the figures (key=value lines) when QEMU exits.
 *   hist=PATH where to write, for every address executed inside the function, how often
 *             (lines `0xADDR COUNT`; the first 64 KiB of the address space), to find out
 *             where its instructions go.
 *
 * Figures: total instructions; calls of the function; instructions inside it; instructions
 * from its first entry to its last entry (one full cycle of the firmware's loop per call in
 * between); `wfi` instructions executed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* What an executed instruction means to the counters. */
enum role { PLAIN = 0, ENTRY = 1, RETURN_SITE = 2, WFI = 4 };

#define MAX_SITES 64

static uint64_t fn_addr = UINT64_MAX;
static uint64_t sites[MAX_SITES];
static int n_sites;
static char out_path[512];
static char hist_path[512];
#define HIST_HALFWORDS (64 * 1024 / 2)
static uint64_t hist[HIST_HALFWORDS];

static uint64_t total, calls, inside_insns, wfis, first_entry, last_entry;
static int inside;

static int is_site(uint64_t vaddr)
{
    for (int i = 0; i < n_sites; i++) {
        if (sites[i] == vaddr) {
            return 1;
        }
    }
    return 0;
}

/* The target of a 32-bit Thumb BL at `pc`, or UINT64_MAX when `p` is not a BL. */
static uint64_t bl_target(const uint8_t *p, size_t size, uint64_t pc)
{
    if (size != 4) {
        return UINT64_MAX;
    }
    uint32_t hi = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    uint32_t lo = (uint32_t)p[2] | (uint32_t)p[3] << 8;
    if ((hi & 0xF800) != 0xF000 || (lo & 0xD000) != 0xD000) {
        return UINT64_MAX;
    }
    uint32_t s = (hi >> 10) & 1, j1 = (lo >> 13) & 1, j2 = (lo >> 11) & 1;
    uint32_t i1 = !(j1 ^ s), i2 = !(j2 ^ s);
    int32_t off = (int32_t)((s << 24) | (i1 << 23) | (i2 << 22) | ((hi & 0x3FF) << 12) |
                            ((lo & 0x7FF) << 1));
    off = (off << 7) >> 7; /* sign-extend 25 bits */
    return (uint64_t)((int64_t)pc + 4 + off);
}

static void on_exec(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    uintptr_t role = (uintptr_t)udata;
    total++;
    if (role & RETURN_SITE) {
        inside = 0;
    }
    if (role & ENTRY) {
        if (calls == 0) {
            first_entry = total;
        }
        last_entry = total;
        calls++;
        inside = 1;
    }
    if (inside) {
        inside_insns++;
        uint64_t at = (uint64_t)(role >> 8) / 2;
        if (hist_path[0] && at < HIST_HALFWORDS) {
            hist[at]++;
        }
    }
    if (role & WFI) {
        wfis++;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t vaddr = qemu_plugin_insn_vaddr(insn);
        size_t size = qemu_plugin_insn_size(insn);
        const uint8_t *data = qemu_plugin_insn_data(insn);
        uintptr_t role = PLAIN;
        if (vaddr == fn_addr) {
            role |= ENTRY;
        }
        if (is_site(vaddr)) {
            role |= RETURN_SITE;
        }
        if (size == 2 && data[0] == 0x30 && data[1] == 0xBF) {
            role |= WFI;
        }
        /* A call of the function: the instruction after it ends the call. Calls are
         * translated before what follows them runs, so the site is known in time. */
        if (bl_target(data, size, vaddr) == fn_addr && n_sites < MAX_SITES &&
            !is_site(vaddr + 4)) {
            sites[n_sites++] = vaddr + 4;
        }
        role |= (uintptr_t)vaddr << 8;
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_exec, QEMU_PLUGIN_CB_NO_REGS,
                                               (void *)role);
    }
}

static void report(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (!f) {
        perror(out_path);
        return;
    }
    fprintf(f, "total=%llu\ncalls=%llu\ninside=%llu\ncycle=%llu\nwfi=%llu\n",
            (unsigned long long)total, (unsigned long long)calls,
            (unsigned long long)inside_insns, (unsigned long long)(last_entry - first_entry),
            (unsigned long long)wfis);
    if (f != stderr) {
        fclose(f);
    }
    FILE *h = hist_path[0] ? fopen(hist_path, "w") : NULL;
    if (h) {
        for (uint64_t i = 0; i < HIST_HALFWORDS; i++) {
            if (hist[i]) {
                fprintf(h, "0x%llx %llu\n", (unsigned long long)(i * 2),
                        (unsigned long long)hist[i]);
            }
        }
        fclose(h);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "fn=", 3) == 0) {
            fn_addr = strtoull(argv[i] + 3, NULL, 0) & ~1ULL;
        } else if (strncmp(argv[i], "hist=", 5) == 0) {
            snprintf(hist_path, sizeof hist_path, "%s", argv[i] + 5);
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else {
            fprintf(stderr, "icount: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, report, NULL);
    return 0;
}
