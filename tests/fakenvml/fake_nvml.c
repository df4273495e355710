/*
 * A fake libnvidia-ml.so.1 for testing gputab without a GPU.
 *
 * pynvml loads "libnvidia-ml.so.1" by name and calls C symbols through ctypes; building this file under that name
 * and putting its directory first in LD_LIBRARY_PATH makes pynvml's real ctypes code (argument marshalling, struct
 * layouts, the two-call size protocols, error mapping) run against scripted data instead of a driver.
 *
 * The data come from a scenario file named by $FAKE_NVML_SCENARIO. Every entry point re-reads it when its inode,
 * size or mtime changed, so a test can rewrite it between two polls of the same backend. The format is line-based
 * (see tests/fakenvml/__init__.py for the writer and the reference):
 *
 *   driver 550.54.15
 *   gpus 2
 *   gpu 0 name NVIDIA H100 80GB HBM3          (the rest of the line is the value)
 *   gpu 0 util 87                             (any numeric key: see gpu_set())
 *   proc 0 4242 compute 1073741824            (gpu pid compute|graphics used_bytes; -1 = not available)
 *   sample 0 4242 1000 55 20                  (gpu pid timestamp_us sm_pct mem_pct)
 *   error nvmlDeviceGetPowerUsage 1 NOT_SUPPORTED   (symbol or *, gpu or *, code name or number)
 *   gpu 0 gpm 1                               (GPM: nvmlGpmQueryDeviceSupport says supported, samples work)
 *   gpu 0 gpm_sm_util 45                      (a GPM metric's value; -1 = that metric answers NOT_SUPPORTED in
 *                                              its own nvmlReturn while the call succeeds, as the driver does)
 *   gpu 0 clocks_event 4                      (nvmlDeviceGetCurrentClocksEventReasons bit mask)
 *
 *   delay nvmlInitWithFlags 3.5               (every call of the symbol sleeps that long first: a slow driver)
 *   delay nvmlDeviceGetComputeRunningProcesses_v3 3 1   (... only on GPU 1: one GPU's call hangs)
 *
 * Besides the NVML API it exports fakeNvmlCallCount(symbol), so a test can prove what was (not) called, and
 * fakeNvmlMaxInFlight(symbol), the most calls of a delayed symbol that were sleeping at once (a pile-up of threads
 * stuck in the same hung call shows as more than 1).
 *
 * NVML is thread-safe ("it is safe to make simultaneous NVML calls from multiple threads"), and so is this fake:
 * the scenario is re-read under a lock into a second buffer and swapped in, so a call running in another thread
 * never sees half a scenario.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef int nvmlReturn_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
    NVML_ERROR_MEMORY = 20,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 16
#define MAX_PROCS 128
#define MAX_SAMPLES 512
#define MAX_ERRORS 64
#define MAX_MIG 8
#define MAX_SYMS 64
#define ANY (-1)

#define MEMORY_V2_VERSION 0x02000028u
#define TEMPERATURE_V1_VERSION 0x100000Cu

/* Layouts mirror pynvml's ctypes structures (c_nvmlMemory_t, c_nvmlProcessInfo_v2_t, ...). */
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned int version, sensorType; int temperature; } nvmlTemperature_v1_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;
/* nvmlDeviceGetProcessesUtilizationInfo (driver 550+): a versioned struct holding the caller's array. */
typedef struct {
    unsigned long long timeStamp;
    unsigned int pid, smUtil, memUtil, encUtil, decUtil, jpgUtil, ofaUtil;
} nvmlProcessUtilizationInfo_v1_t;
typedef struct {
    unsigned int version, processSamplesCount;
    unsigned long long lastSeenTimeStamp;
    nvmlProcessUtilizationInfo_v1_t *procUtilArray;
} nvmlProcessesUtilizationInfo_t;
#define PROCESSES_UTILIZATION_INFO_V1 0x01000018u
/* nvmlDeviceGetFieldValues: nvmlFieldValue_t with its value union, as nvml.h and pynvml's c_nvmlFieldValue_t. */
typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvmlValue_t;
typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    unsigned int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;
#define NVML_FI_DEV_POWER_AVERAGE 185
#define NVML_FI_DEV_POWER_INSTANT 186
#define NVML_VALUE_TYPE_UNSIGNED_INT 1

/* NVML GPM (Hopper and newer), laid out as nvml.h and pynvml's c_nvmlGpmMetricsGet_t / c_nvmlGpmSupport_t. */
#define NVML_GPM_METRICS_GET_VERSION 1
#define NVML_GPM_SUPPORT_VERSION 1
#define FAKE_GPM_METRIC_MAX 477 /* pynvml's NVML_GPM_METRIC_MAX: the metrics array it passes has this many slots */
typedef struct { const char *shortName, *longName, *unit; } nvmlGpmMetricInfo_t;
typedef struct {
    unsigned int metricId;
    nvmlReturn_t nvmlReturn;
    double value;
    nvmlGpmMetricInfo_t metricInfo;
} nvmlGpmMetric_t;
struct nvmlGpmSample_st;
typedef struct nvmlGpmSample_st *nvmlGpmSample_t;
typedef struct {
    unsigned int version, numMetrics;
    nvmlGpmSample_t sample1, sample2;
    nvmlGpmMetric_t metrics[FAKE_GPM_METRIC_MAX];
} nvmlGpmMetricsGet_t;
typedef struct { unsigned int version, isSupportedDevice; } nvmlGpmSupport_t;
/* nvmlDeviceAttributes_t (nvml.h; pynvml's c_nvmlDeviceAttributes): what a MIG device handle is made of. */
typedef struct {
    unsigned int multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount, sharedEncoderCount,
        sharedJpegCount, sharedOfaCount, gpuInstanceSliceCount, computeInstanceSliceCount;
    unsigned long long memorySizeMB;
} nvmlDeviceAttributes_t;

/* The GPM metrics a scenario can script: metric id -> gpu_t field (value -1 = this metric unsupported). */
enum { GPM_SM_UTIL, GPM_SM_OCC, GPM_TENSOR, GPM_DRAM_BW, GPM_PCIE_TX, GPM_PCIE_RX, GPM_NVLINK_RX, GPM_NVLINK_TX,
       GPM_N };
static const struct { unsigned int id; const char *key, *shortName, *unit; } gpm_metrics[GPM_N] = {
    {2, "gpm_sm_util", "sm_util", "%"}, {3, "gpm_sm_occupancy", "sm_occupancy", "%"},
    {5, "gpm_tensor", "any_tensor_util", "%"}, {10, "gpm_dram_bw", "dram_bw_util", "%"},
    {20, "gpm_pcie_tx_mibs", "pcie_tx_per_sec", "MiB/s"}, {21, "gpm_pcie_rx_mibs", "pcie_rx_per_sec", "MiB/s"},
    {60, "gpm_nvlink_rx_mibs", "nvlink_total_rx_per_sec", "MiB/s"},
    {61, "gpm_nvlink_tx_mibs", "nvlink_total_tx_per_sec", "MiB/s"},
};

typedef struct {
    char name[96], uuid[96];
    long long util, memutil, mem_used, mem_total, mem_reserved, power_mw, limit_mw, energy_base_mj, temp, sm_clock,
        pcie_tx_kbs, pcie_rx_kbs, gpm, clocks_event, mig, mig_max, power_fields, power_avg_mw, module_power_mw;
    long long gpm_values[GPM_N];
} gpu_t;
/* One MIG device (a compute instance inside a GPU instance) at slot `slot` of its parent GPU. */
/* sm_util: what GPM per MIG instance (nvmlGpmMigSampleGet) reports as SM_UTIL for its GPU instance; -1 = the metric
 * answers NOT_SUPPORTED in its own nvmlReturn. */
/* profile: the GPU instance profile's name as the driver gives it (nvmlDeviceGetGpuInstanceProfileInfoV, without
 * the "MIG " prefix); empty = the driver names none. */
typedef struct {
    int used, gi_id, ci_id, ci_slices, gi_slices, sms;
    long long mem_total, mem_used, sm_util;
    char profile[32];
} mig_t;
typedef struct { int gpu; unsigned int pid; int graphics; long long used; unsigned int gi, ci; } proc_t;
typedef struct { int gpu; unsigned int pid; unsigned long long ts; unsigned int sm, mem; } sample_t;
typedef struct { char sym[64]; int gpu; int code; } error_t_;
typedef struct { char sym[64]; double seconds; int gpu; } delay_t;
#define MAX_DELAYS 16

/* The opaque device handle pynvml passes back: a pointer into this array (handle - devices = index). */
struct nvmlDevice_st { int index; };
typedef struct nvmlDevice_st *nvmlDevice_t;
static struct nvmlDevice_st devices[MAX_GPUS];
/* MIG device handles point into their own array, so a parent-only call given one fails as on the driver. */
static struct nvmlDevice_st mig_devices[MAX_GPUS][MAX_MIG];

typedef struct {
    char driver[80];
    int ngpus, nprocs, nsamples, nerrors;
    gpu_t gpus[MAX_GPUS];
    proc_t procs[MAX_PROCS];
    sample_t samples[MAX_SAMPLES];
    error_t_ errors[MAX_ERRORS];
    mig_t migs[MAX_GPUS][MAX_MIG];
    delay_t delays[MAX_DELAYS];
    int ndelays;
} scenario_t;
/* Two buffers: a reload parses into the one not in use and then swaps `scp`, under `lock`. */
static scenario_t sc_bufs[2];
static scenario_t *scp = &sc_bufs[0];
#define sc (*scp)
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct { ino_t ino; off_t size; long long mtime_ns; int loaded; } seen;
static int init_count;
/* Energy integrates power over real time: gpu_acc_mj holds what accrued until last_t (monotonic seconds). */
static double last_t;
static struct { char name[64]; long count; } calls[MAX_SYMS];
static int ncalls;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void count_call(const char *sym) {
    pthread_mutex_lock(&lock);
    int i;
    for (i = 0; i < ncalls; i++)
        if (strcmp(calls[i].name, sym) == 0) { calls[i].count++; break; }
    if (i == ncalls && ncalls < MAX_SYMS) {
        snprintf(calls[ncalls].name, sizeof calls[ncalls].name, "%s", sym);
        calls[ncalls++].count = 1;
    }
    pthread_mutex_unlock(&lock);
}

/* Calls of each delayed symbol sleeping now, and the most that ever slept at once. */
static struct { char name[64]; long now, max; } inflight[MAX_SYMS];
static int ninflight;

static int inflight_slot(const char *sym) {
    for (int i = 0; i < ninflight; i++)
        if (strcmp(inflight[i].name, sym) == 0) return i;
    if (ninflight >= MAX_SYMS) return -1;
    snprintf(inflight[ninflight].name, sizeof inflight[ninflight].name, "%s", sym);
    return ninflight++;
}

/* Exported for tests: the most calls of `sym` that were in a scripted delay at the same time. */
long fakeNvmlMaxInFlight(const char *sym) {
    pthread_mutex_lock(&lock);
    long max = 0;
    for (int i = 0; i < ninflight; i++)
        if (strcmp(inflight[i].name, sym) == 0) max = inflight[i].max;
    pthread_mutex_unlock(&lock);
    return max;
}

/* Exported for tests: how often `sym` was called in this process ("*" = all NVML calls). */
long fakeNvmlCallCount(const char *sym) {
    long total = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ncalls; i++)
        if (strcmp(sym, "*") == 0 || strcmp(calls[i].name, sym) == 0) total += calls[i].count;
    pthread_mutex_unlock(&lock);
    return total;
}

static const struct { const char *name; int code; } codes[] = {
    {"SUCCESS", 0}, {"UNINITIALIZED", 1}, {"INVALID_ARGUMENT", 2}, {"NOT_SUPPORTED", 3}, {"NO_PERMISSION", 4},
    {"ALREADY_INITIALIZED", 5}, {"NOT_FOUND", 6}, {"INSUFFICIENT_SIZE", 7}, {"INSUFFICIENT_POWER", 8},
    {"DRIVER_NOT_LOADED", 9}, {"TIMEOUT", 10}, {"IRQ_ISSUE", 11}, {"LIBRARY_NOT_FOUND", 12},
    {"FUNCTION_NOT_FOUND", 13}, {"CORRUPTED_INFOROM", 14}, {"GPU_IS_LOST", 15}, {"RESET_REQUIRED", 16},
    {"OPERATING_SYSTEM", 17}, {"LIB_RM_VERSION_MISMATCH", 18}, {"IN_USE", 19}, {"MEMORY", 20}, {"NO_DATA", 21},
    {"ARGUMENT_VERSION_MISMATCH", 25}, {"NOT_READY", 27}, {"GPU_NOT_FOUND", 28}, {"UNKNOWN", 999},
};

static int parse_code(const char *s) {
    const char *name = strncmp(s, "NVML_ERROR_", 11) == 0 ? s + 11 : s;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i].name, name) == 0) return codes[i].code;
    if (isdigit((unsigned char)s[0])) return atoi(s);
    return NVML_ERROR_UNKNOWN; /* a typo in a scenario still fails loudly rather than passing */
}

static void gpu_defaults(scenario_t *out, int i) {
    gpu_t *g = &out->gpus[i];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "Fake GPU %d", i);
    snprintf(g->uuid, sizeof g->uuid, "GPU-fake0000-0000-0000-0000-%012d", i);
    g->mem_total = 80LL << 30;
    g->power_mw = 100000;
    g->limit_mw = 700000;
    g->energy_base_mj = 1000000LL * (i + 1);
    g->temp = 40;
    g->sm_clock = 1410;
    g->mig = -1; /* not MIG-capable: nvmlDeviceGetMigMode answers NOT_SUPPORTED */
    g->mig_max = 7;
    g->power_avg_mw = -1;    /* -1: the average field reads the same as power_mw */
    g->module_power_mw = -1; /* -1: no module scope (not Grace Hopper): that field answers NOT_SUPPORTED */
}

static void gpu_set(gpu_t *g, const char *key, const char *val) {
    long long v = strtoll(val, NULL, 10);
    if (!strcmp(key, "name")) snprintf(g->name, sizeof g->name, "%.95s", val);
    else if (!strcmp(key, "uuid")) snprintf(g->uuid, sizeof g->uuid, "%.95s", val);
    else if (!strcmp(key, "util")) g->util = v;
    else if (!strcmp(key, "memutil")) g->memutil = v;
    else if (!strcmp(key, "mem_used")) g->mem_used = v;
    else if (!strcmp(key, "mem_total")) g->mem_total = v;
    else if (!strcmp(key, "mem_reserved")) g->mem_reserved = v;
    else if (!strcmp(key, "power_mw")) g->power_mw = v;
    else if (!strcmp(key, "limit_mw")) g->limit_mw = v;
    else if (!strcmp(key, "energy_base_mj")) g->energy_base_mj = v;
    else if (!strcmp(key, "temp")) g->temp = v;
    else if (!strcmp(key, "sm_clock")) g->sm_clock = v;
    else if (!strcmp(key, "pcie_tx_kbs")) g->pcie_tx_kbs = v;
    else if (!strcmp(key, "pcie_rx_kbs")) g->pcie_rx_kbs = v;
    else if (!strcmp(key, "gpm")) g->gpm = v;
    else if (!strcmp(key, "clocks_event")) g->clocks_event = v;
    else if (!strcmp(key, "mig")) g->mig = v;
    else if (!strcmp(key, "mig_max")) g->mig_max = v;
    else if (!strcmp(key, "power_fields")) g->power_fields = v;
    else if (!strcmp(key, "power_avg_mw")) g->power_avg_mw = v;
    else if (!strcmp(key, "module_power_mw")) g->module_power_mw = v;
    else {
        for (int m = 0; m < GPM_N; m++)
            if (!strcmp(key, gpm_metrics[m].key)) { g->gpm_values[m] = v; return; }
        fprintf(stderr, "fake_nvml: unknown gpu key %s\n", key);
    }
}

/* Per-GPU accrued energy is kept separately because each GPU has its own power. */
static double gpu_acc_mj[MAX_GPUS];

static void energy_accrue(void) {
    double t = now_s();
    if (last_t > 0)
        for (int i = 0; i < sc.ngpus && i < MAX_GPUS; i++) gpu_acc_mj[i] += sc.gpus[i].power_mw * (t - last_t);
    last_t = t;
}

/* Parse into `out` (the buffer not in use): within this function `sc` names it. */
#undef sc
#define sc (*out)
static void parse_scenario(FILE *f, scenario_t *out) {
    char line[512];
    memset(&sc, 0, sizeof sc);
    snprintf(sc.driver, sizeof sc.driver, "550.54.15");
    for (int i = 0; i < MAX_GPUS; i++) gpu_defaults(out, i);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char kw[32] = "", a[64] = "", b[64] = "", c[64] = "", d[64] = "";
        int n = sscanf(line, "%31s %63s %63s %63s %63s", kw, a, b, c, d);
        if (n < 1 || kw[0] == '#') continue;
        if (!strcmp(kw, "driver") && n >= 2) {
            snprintf(sc.driver, sizeof sc.driver, "%s", a);
        } else if (!strcmp(kw, "gpus") && n >= 2) {
            sc.ngpus = atoi(a);
            if (sc.ngpus > MAX_GPUS) sc.ngpus = MAX_GPUS;
        } else if (!strcmp(kw, "gpu") && n >= 4) {
            int i = atoi(a);
            if (i < 0 || i >= MAX_GPUS) continue;
            /* the value is the rest of the line after "gpu I key ", so names may contain spaces */
            const char *p = line;
            for (int field = 0; field < 3; field++) {
                while (*p == ' ' || *p == '\t') p++;
                while (*p && *p != ' ' && *p != '\t') p++;
            }
            while (*p == ' ' || *p == '\t') p++;
            gpu_set(&sc.gpus[i], b, p);
        } else if (!strcmp(kw, "proc") && n >= 5 && sc.nprocs < MAX_PROCS) {
            proc_t *p = &sc.procs[sc.nprocs++];
            p->gpu = atoi(a);
            p->pid = (unsigned int)strtoul(b, NULL, 10);
            p->graphics = !strcmp(c, "graphics");
            p->used = strtoll(d, NULL, 10);
            p->gi = p->ci = 0xFFFFFFFFu; /* not on a MIG instance */
            sscanf(line, "%*s %*s %*s %*s %*s %u %u", &p->gi, &p->ci);
        } else if (!strcmp(kw, "mig") && n >= 3) {
            /* mig GPU SLOT GI CI CI_SLICES GI_SLICES SMS MEM_TOTAL MEM_USED */
            int gpu = atoi(a), slot = atoi(b);
            if (gpu < 0 || gpu >= MAX_GPUS || slot < 0 || slot >= MAX_MIG) continue;
            mig_t *m = &sc.migs[gpu][slot];
            m->used = 1;
            m->sm_util = -1;
            m->profile[0] = 0;
            sscanf(line, "%*s %*s %*s %d %d %d %d %d %lld %lld %lld %31s", &m->gi_id, &m->ci_id, &m->ci_slices,
                   &m->gi_slices, &m->sms, &m->mem_total, &m->mem_used, &m->sm_util, m->profile);
            if (!strcmp(m->profile, "-")) m->profile[0] = 0;
        } else if (!strcmp(kw, "sample") && n >= 5 && sc.nsamples < MAX_SAMPLES) {
            sample_t *s = &sc.samples[sc.nsamples++];
            unsigned int mem = 0;
            sscanf(line, "%*s %d %u %llu %u %u", &s->gpu, &s->pid, &s->ts, &s->sm, &mem);
            s->mem = mem;
        } else if (!strcmp(kw, "delay") && n >= 3 && sc.ndelays < MAX_DELAYS) {
            delay_t *dl = &sc.delays[sc.ndelays++];
            snprintf(dl->sym, sizeof dl->sym, "%s", a);
            dl->seconds = strtod(b, NULL);
            dl->gpu = (n >= 4 && strcmp(c, "*")) ? atoi(c) : ANY;
        } else if (!strcmp(kw, "error") && n >= 4 && sc.nerrors < MAX_ERRORS) {
            error_t_ *e = &sc.errors[sc.nerrors++];
            snprintf(e->sym, sizeof e->sym, "%s", a);
            e->gpu = strcmp(b, "*") ? atoi(b) : ANY;
            e->code = parse_code(c);
        } else {
            fprintf(stderr, "fake_nvml: ignored scenario line: %s\n", line);
        }
    }
}

#undef sc
#define sc (*scp)

/* Re-read the scenario if the file changed. Called at the top of every entry point. */
static void reload_locked(void) {
    const char *path = getenv("FAKE_NVML_SCENARIO");
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        if (!seen.loaded) { memset(&sc, 0, sizeof sc); seen.loaded = 1; }
        return;
    }
    long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    if (seen.loaded && st.st_ino == seen.ino && st.st_size == seen.size && mtime_ns == seen.mtime_ns) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    energy_accrue(); /* energy so far was drawn at the old power */
    scenario_t *next = scp == &sc_bufs[0] ? &sc_bufs[1] : &sc_bufs[0];
    parse_scenario(f, next);
    fclose(f);
    scp = next;
    seen.ino = st.st_ino;
    seen.size = st.st_size;
    seen.mtime_ns = mtime_ns;
    seen.loaded = 1;
}

static void reload(void) {
    pthread_mutex_lock(&lock);
    reload_locked();
    pthread_mutex_unlock(&lock);
}

/* A scripted hang: `delay SYMBOL SECONDS [GPU]` makes every call of SYMBOL (on GPU) sleep that long first. */
static void delay(const char *sym, int gpu) {
    double s = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < sc.ndelays; i++) {
        if (strcmp(sc.delays[i].sym, sym) != 0) continue;
        if (sc.delays[i].gpu != ANY && gpu != ANY && sc.delays[i].gpu != gpu) continue;
        s = sc.delays[i].seconds;
        break;
    }
    int slot = s > 0 ? inflight_slot(sym) : -1;
    if (slot >= 0 && ++inflight[slot].now > inflight[slot].max) inflight[slot].max = inflight[slot].now;
    pthread_mutex_unlock(&lock);
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {}
    if (slot >= 0) {
        pthread_mutex_lock(&lock);
        inflight[slot].now--;
        pthread_mutex_unlock(&lock);
    }
}

/* The injected error for (sym, gpu), or SUCCESS. "*" as symbol matches every device function. */
static int injected(const char *sym, int gpu, int device_fn) {
    for (int i = 0; i < sc.nerrors; i++) {
        error_t_ *e = &sc.errors[i];
        if ((strcmp(e->sym, sym) == 0 || (device_fn && strcmp(e->sym, "*") == 0)) && (e->gpu == ANY || e->gpu == gpu))
            return e->code;
    }
    return NVML_SUCCESS;
}

/* Common prologue of a device function: count, reload, check init, handle and injected errors. */
#define DEVICE_PROLOGUE(sym, dev)                                                   \
    int gi;                                                                         \
    count_call(sym);                                                                \
    reload();                                                                       \
    if (!init_count) return NVML_ERROR_UNINITIALIZED;                               \
    if (!(dev) || (dev) < devices || (dev) >= devices + MAX_GPUS)                   \
        return NVML_ERROR_INVALID_ARGUMENT;                                         \
    gi = (int)((dev) - devices);                                                    \
    delay(sym, gi);                                                                 \
    if (gi >= sc.ngpus) return NVML_ERROR_INVALID_ARGUMENT;                         \
    { int rc_ = injected(sym, gi, 1); if (rc_) return rc_; }                        \
    gpu_t *g = &sc.gpus[gi];                                                        \
    (void)g

static nvmlReturn_t do_init(const char *sym) {
    count_call(sym);
    reload();
    delay(sym, ANY);
    int rc = injected(sym, ANY, 0);
    if (rc) return rc;
    init_count++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return do_init("nvmlInitWithFlags"); }
nvmlReturn_t nvmlInit_v2(void) { return do_init("nvmlInit_v2"); }

nvmlReturn_t nvmlShutdown(void) {
    count_call("nvmlShutdown");
    if (!init_count) return NVML_ERROR_UNINITIALIZED;
    init_count--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    static const struct { int code; const char *text; } texts[] = {
        {0, "Success"}, {1, "Uninitialized"}, {2, "Invalid Argument"}, {3, "Not Supported"},
        {4, "Insufficient Permissions"}, {6, "Not Found"}, {7, "Insufficient Size"}, {9, "Driver Not Loaded"},
        {13, "Function Not Found"}, {15, "GPU is lost"}, {18, "RM has detected an NVML/RM version mismatch."},
        {25, "Argument version mismatch"}, {999, "Unknown Error"},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (texts[i].code == result) return texts[i].text;
    return "Unknown Error";
}

static nvmlReturn_t copy_string(const char *src, char *dst, unsigned int len) {
    if (!dst) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    count_call("nvmlSystemGetDriverVersion");
    reload();
    if (!init_count) return NVML_ERROR_UNINITIALIZED;
    int rc = injected("nvmlSystemGetDriverVersion", ANY, 0);
    return rc ? rc : copy_string(sc.driver, version, length);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    count_call("nvmlDeviceGetCount_v2");
    reload();
    if (!init_count) return NVML_ERROR_UNINITIALIZED;
    int rc = injected("nvmlDeviceGetCount_v2", ANY, 0);
    if (rc) return rc;
    *count = (unsigned int)sc.ngpus;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    count_call("nvmlDeviceGetHandleByIndex_v2");
    reload();
    if (!init_count) return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned int)sc.ngpus || index >= MAX_GPUS) return NVML_ERROR_INVALID_ARGUMENT;
    int rc = injected("nvmlDeviceGetHandleByIndex_v2", (int)index, 1);
    if (rc) return rc;
    devices[index].index = (int)index;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int length) {
    DEVICE_PROLOGUE("nvmlDeviceGetName", dev);
    return copy_string(g->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *uuid, unsigned int length) {
    DEVICE_PROLOGUE("nvmlDeviceGetUUID", dev);
    return copy_string(g->uuid, uuid, length);
}

/* The MIG slot a handle names, or NULL when it is no (live) MIG device handle; *gpu gets the parent's index. */
static mig_t *mig_of(nvmlDevice_t dev, int *gpu) {
    if (!dev || dev < &mig_devices[0][0] || dev >= &mig_devices[0][0] + MAX_GPUS * MAX_MIG) return NULL;
    long k = dev - &mig_devices[0][0];
    int gi = (int)(k / MAX_MIG), slot = (int)(k % MAX_MIG);
    if (gi >= sc.ngpus || sc.gpus[gi].mig != 1 || !sc.migs[gi][slot].used) return NULL;
    if (gpu) *gpu = gi;
    return &sc.migs[gi][slot];
}

/* Prologue of a call that takes a MIG device handle: count, reload, init, injected errors (by parent index). */
#define MIG_PROLOGUE(sym, dev)                                                      \
    int mgpu = -1;                                                                  \
    count_call(sym);                                                                \
    reload();                                                                       \
    if (!init_count) return NVML_ERROR_UNINITIALIZED;                               \
    mig_t *m = mig_of(dev, &mgpu);                                                  \
    if (m) { int rc_ = injected(sym, mgpu, 1); if (rc_) return rc_; }               \
    (void)m

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *u) {
    DEVICE_PROLOGUE("nvmlDeviceGetUtilizationRates", dev);
    if (g->mig == 1) return NVML_ERROR_NOT_SUPPORTED; /* the driver does not report it for a GPU in MIG mode */
    u->gpu = (unsigned int)g->util;
    u->memory = (unsigned int)g->memutil;
    return NVML_SUCCESS;
}

static int is_mig_handle(nvmlDevice_t dev) {
    return dev >= &mig_devices[0][0] && dev < &mig_devices[0][0] + MAX_GPUS * MAX_MIG;
}

/* Memory of a MIG device: its own slice of the parent's memory. */
static nvmlReturn_t mig_memory(const char *sym, nvmlDevice_t dev, unsigned long long *total, unsigned long long *used) {
    MIG_PROLOGUE(sym, dev);
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    *total = (unsigned long long)m->mem_total;
    *used = (unsigned long long)m->mem_used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *m) {
    if (is_mig_handle(dev)) {
        int rc = mig_memory("nvmlDeviceGetMemoryInfo", dev, &m->total, &m->used);
        m->free = rc ? 0 : m->total - m->used;
        return rc;
    }
    DEVICE_PROLOGUE("nvmlDeviceGetMemoryInfo", dev);
    /* v1 counts the driver's reservation as used, as the real v1 does */
    m->total = (unsigned long long)g->mem_total;
    m->used = (unsigned long long)(g->mem_used + g->mem_reserved);
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *m) {
    if (is_mig_handle(dev)) {
        if (m->version != MEMORY_V2_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        int rc = mig_memory("nvmlDeviceGetMemoryInfo_v2", dev, &m->total, &m->used);
        m->reserved = 0;
        m->free = rc ? 0 : m->total - m->used;
        return rc;
    }
    DEVICE_PROLOGUE("nvmlDeviceGetMemoryInfo_v2", dev);
    if (m->version != MEMORY_V2_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    m->total = (unsigned long long)g->mem_total;
    m->reserved = (unsigned long long)g->mem_reserved;
    m->used = (unsigned long long)g->mem_used;
    m->free = m->total - m->reserved - m->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw) {
    DEVICE_PROLOGUE("nvmlDeviceGetPowerUsage", dev);
    *mw = (unsigned int)g->power_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t dev, unsigned int *mw) {
    DEVICE_PROLOGUE("nvmlDeviceGetEnforcedPowerLimit", dev);
    *mw = (unsigned int)g->limit_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t dev, unsigned long long *mj) {
    DEVICE_PROLOGUE("nvmlDeviceGetTotalEnergyConsumption", dev);
    pthread_mutex_lock(&lock);
    energy_accrue();
    /* power_mw * seconds = mJ; the base may drop between scenarios, which models a counter reset */
    long long e = g->energy_base_mj + (long long)(gpu_acc_mj[gi]);
    pthread_mutex_unlock(&lock);
    *mj = (unsigned long long)(e < 0 ? 0 : e);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t dev, unsigned int sensor, unsigned int *temp) {
    DEVICE_PROLOGUE("nvmlDeviceGetTemperature", dev);
    if (sensor != 0) return NVML_ERROR_NOT_SUPPORTED;
    *temp = (unsigned int)g->temp;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t dev, nvmlTemperature_v1_t *t) {
    DEVICE_PROLOGUE("nvmlDeviceGetTemperatureV", dev);
    if (t->version != TEMPERATURE_V1_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (t->sensorType != 0) return NVML_ERROR_NOT_SUPPORTED;
    t->temperature = (int)g->temp;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t dev, unsigned int type, unsigned int *mhz) {
    DEVICE_PROLOGUE("nvmlDeviceGetClockInfo", dev);
    if (type != 1) return NVML_ERROR_NOT_SUPPORTED; /* only NVML_CLOCK_SM is scripted */
    *mhz = (unsigned int)g->sm_clock;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t dev, unsigned int counter, unsigned int *kbs) {
    DEVICE_PROLOGUE("nvmlDeviceGetPcieThroughput", dev);
    if (counter > 1) return NVML_ERROR_INVALID_ARGUMENT;
    *kbs = (unsigned int)(counter == 0 ? g->pcie_tx_kbs : g->pcie_rx_kbs);
    return NVML_SUCCESS;
}

/* The two-call protocol of the running-process lists: too small a buffer returns the count needed. */
static nvmlReturn_t list_procs(int gi, int graphics, unsigned int *count, nvmlProcessInfo_t *infos) {
    unsigned int n = 0;
    for (int i = 0; i < sc.nprocs; i++)
        if (sc.procs[i].gpu == gi && sc.procs[i].graphics == graphics) n++;
    if (*count < n || (n > 0 && !infos)) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    unsigned int k = 0;
    for (int i = 0; i < sc.nprocs; i++) {
        proc_t *p = &sc.procs[i];
        if (p->gpu != gi || p->graphics != graphics) continue;
        infos[k].pid = p->pid;
        infos[k].usedGpuMemory = p->used < 0 ? ~0ULL : (unsigned long long)p->used; /* NVML_VALUE_NOT_AVAILABLE */
        infos[k].gpuInstanceId = p->gi; /* 0xFFFFFFFF off MIG, as the driver reports */
        infos[k].computeInstanceId = p->ci;
        k++;
    }
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t dev, unsigned int *count, nvmlProcessInfo_t *i) {
    DEVICE_PROLOGUE("nvmlDeviceGetComputeRunningProcesses_v3", dev);
    return list_procs(gi, 0, count, i);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t dev, unsigned int *count, nvmlProcessInfo_t *i) {
    DEVICE_PROLOGUE("nvmlDeviceGetGraphicsRunningProcesses_v3", dev);
    return list_procs(gi, 1, count, i);
}

/* Samples newer than lastSeen; none -> NOT_FOUND, as the real driver answers when nothing ran since then. */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t dev, nvmlProcessUtilizationSample_t *out,
                                             unsigned int *count, unsigned long long lastSeen) {
    DEVICE_PROLOGUE("nvmlDeviceGetProcessUtilization", dev);
    if (g->mig == 1) return NVML_ERROR_NOT_SUPPORTED; /* per-process utilization is not reported on MIG */
    unsigned int n = 0;
    for (int i = 0; i < sc.nsamples; i++)
        if (sc.samples[i].gpu == gi && sc.samples[i].ts > lastSeen) n++;
    if (n == 0) return NVML_ERROR_NOT_FOUND;
    if (!out || *count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    unsigned int k = 0;
    for (int i = 0; i < sc.nsamples; i++) {
        sample_t *s = &sc.samples[i];
        if (s->gpu != gi || s->ts <= lastSeen) continue;
        out[k].pid = s->pid;
        out[k].timeStamp = s->ts;
        out[k].smUtil = s->sm;
        out[k].memUtil = s->mem;
        out[k].encUtil = 0;
        out[k].decUtil = 0;
        k++;
    }
    *count = n;
    return NVML_SUCCESS;
}

/* The newer call: same samples, the versioned struct and the same two-call size protocol. */
nvmlReturn_t nvmlDeviceGetProcessesUtilizationInfo(nvmlDevice_t dev, nvmlProcessesUtilizationInfo_t *info) {
    DEVICE_PROLOGUE("nvmlDeviceGetProcessesUtilizationInfo", dev);
    if (!info) return NVML_ERROR_INVALID_ARGUMENT;
    if (info->version != PROCESSES_UTILIZATION_INFO_V1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (g->mig == 1) return NVML_ERROR_NOT_SUPPORTED;
    unsigned long long lastSeen = info->lastSeenTimeStamp;
    unsigned int n = 0;
    for (int i = 0; i < sc.nsamples; i++)
        if (sc.samples[i].gpu == gi && sc.samples[i].ts > lastSeen) n++;
    if (n == 0) return NVML_ERROR_NOT_FOUND;
    if (!info->procUtilArray || info->processSamplesCount < n) {
        info->processSamplesCount = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int k = 0;
    for (int i = 0; i < sc.nsamples; i++) {
        sample_t *s = &sc.samples[i];
        if (s->gpu != gi || s->ts <= lastSeen) continue;
        nvmlProcessUtilizationInfo_v1_t *o = &info->procUtilArray[k++];
        memset(o, 0, sizeof *o);
        o->pid = s->pid;
        o->timeStamp = s->ts;
        o->smUtil = s->sm;
        o->memUtil = s->mem;
    }
    info->processSamplesCount = n;
    return NVML_SUCCESS;
}

/* Field values: power fields answer where the scenario says the driver has them (`power_fields 1`), each with
 * its own nvmlReturn; the call itself succeeds, as the driver's does. */
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t dev, int count, nvmlFieldValue_t *values) {
    DEVICE_PROLOGUE("nvmlDeviceGetFieldValues", dev);
    if (!values || count < 0) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->timestamp = (long long)(now_s() * 1e6);
        v->latencyUsec = 0;
        v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
        v->value.ullVal = 0;
        v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        if (!g->power_fields || (v->fieldId != NVML_FI_DEV_POWER_INSTANT && v->fieldId != NVML_FI_DEV_POWER_AVERAGE))
            continue;
        long long mw = -1;
        if (v->scopeId == 0) /* NVML_POWER_SCOPE_GPU */
            mw = v->fieldId == NVML_FI_DEV_POWER_AVERAGE && g->power_avg_mw >= 0 ? g->power_avg_mw : g->power_mw;
        else if (v->scopeId == 1) /* NVML_POWER_SCOPE_MODULE */
            mw = g->module_power_mw;
        if (mw < 0) continue;
        v->value.uiVal = (unsigned int)mw;
        v->nvmlReturn = NVML_SUCCESS;
    }
    return NVML_SUCCESS;
}

/* -- clock event reasons --------------------------------------------------------------------------------------- */

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t dev, unsigned long long *reasons) {
    DEVICE_PROLOGUE("nvmlDeviceGetCurrentClocksEventReasons", dev);
    if (!reasons) return NVML_ERROR_INVALID_ARGUMENT;
    *reasons = (unsigned long long)g->clocks_event;
    return NVML_SUCCESS;
}

/* The same call under its name before driver 535 (nvidia-ml-py still has both). */
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t dev, unsigned long long *reasons) {
    DEVICE_PROLOGUE("nvmlDeviceGetCurrentClocksThrottleReasons", dev);
    if (!reasons) return NVML_ERROR_INVALID_ARGUMENT;
    *reasons = (unsigned long long)g->clocks_event;
    return NVML_SUCCESS;
}

/* -- GPM ------------------------------------------------------------------------------------------------------------
 * A sample is an opaque allocation the caller owns (nvmlGpmSampleAlloc/Free). nvmlGpmSampleGet fills it with the
 * GPU it came from and a sequence number; nvmlGpmMetricsGet needs two samples of the same GPU, the second taken
 * later, and answers each metric with its own nvmlReturn, as the driver does. The values are the scenario's at the
 * time of the second sample (the real driver derives them from counters between the two). */

#define GPM_MAGIC 0x47504d53u
/* gi: the GPU instance a MIG sample came from (nvmlGpmMigSampleGet), -1 for the whole GPU. */
struct nvmlGpmSample_st { unsigned int magic; int gpu, gi; long long seq; long long values[GPM_N]; };
static long long gpm_seq;
static long gpm_live;

/* Exported for tests: GPM samples allocated and not yet freed (a leak check). */
long fakeNvmlGpmSamplesLive(void) { return gpm_live; }

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t dev, nvmlGpmSupport_t *support) {
    DEVICE_PROLOGUE("nvmlGpmQueryDeviceSupport", dev);
    if (!support) return NVML_ERROR_INVALID_ARGUMENT;
    if (support->version != NVML_GPM_SUPPORT_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    support->isSupportedDevice = g->gpm ? 1u : 0u;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *out) {
    count_call("nvmlGpmSampleAlloc");
    reload();
    if (!init_count) return NVML_ERROR_UNINITIALIZED;
    int rc = injected("nvmlGpmSampleAlloc", ANY, 0);
    if (rc) return rc;
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    struct nvmlGpmSample_st *s = calloc(1, sizeof *s);
    if (!s) return NVML_ERROR_MEMORY;
    s->magic = GPM_MAGIC;
    s->gpu = -1;
    *out = s;
    gpm_live++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t s) {
    count_call("nvmlGpmSampleFree");
    if (!s || s->magic != GPM_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
    s->magic = 0;
    free(s);
    gpm_live--;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t dev, nvmlGpmSample_t s) {
    DEVICE_PROLOGUE("nvmlGpmSampleGet", dev);
    if (!s || s->magic != GPM_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
    if (!g->gpm) return NVML_ERROR_NOT_SUPPORTED;
    s->gpu = gi;
    s->gi = -1;
    s->seq = ++gpm_seq;
    memcpy(s->values, g->gpm_values, sizeof s->values);
    return NVML_SUCCESS;
}

/* nvml.h: nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t device, unsigned int gpuInstanceId, nvmlGpmSample_t gpmSample):
 * a GPM sample of one GPU instance of a GPU in MIG mode (the parent's handle). INVALID_ARGUMENT for a bad sample or
 * a GPU instance the GPU does not have; NOT_SUPPORTED where the GPU lacks GPM or is not in MIG mode. Only SM_UTIL is
 * scripted per instance (the `mig` line's last field); every other metric answers NOT_SUPPORTED. */
nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t dev, unsigned int gpuInstanceId, nvmlGpmSample_t s) {
    DEVICE_PROLOGUE("nvmlGpmMigSampleGet", dev);
    if (!s || s->magic != GPM_MAGIC) return NVML_ERROR_INVALID_ARGUMENT;
    if (!g->gpm || g->mig != 1) return NVML_ERROR_NOT_SUPPORTED;
    mig_t *m = NULL;
    for (int k = 0; k < MAX_MIG && !m; k++)
        if (sc.migs[gi][k].used && sc.migs[gi][k].gi_id == (int)gpuInstanceId) m = &sc.migs[gi][k];
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    s->gpu = gi;
    s->gi = (int)gpuInstanceId;
    s->seq = ++gpm_seq;
    for (int k = 0; k < GPM_N; k++) s->values[k] = -1;
    s->values[GPM_SM_UTIL] = m->sm_util;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *m) {
    count_call("nvmlGpmMetricsGet");
    reload();
    if (!init_count) return NVML_ERROR_UNINITIALIZED;
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    if (m->version != NVML_GPM_METRICS_GET_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    struct nvmlGpmSample_st *a = m->sample1, *b = m->sample2;
    if (!a || !b || a->magic != GPM_MAGIC || b->magic != GPM_MAGIC || a->gpu < 0 || a->gpu != b->gpu || a->gi != b->gi ||
        b->seq <= a->seq || m->numMetrics > FAKE_GPM_METRIC_MAX)
        return NVML_ERROR_INVALID_ARGUMENT;
    int rc = injected("nvmlGpmMetricsGet", a->gpu, 0);
    if (rc) return rc;
    for (unsigned int i = 0; i < m->numMetrics; i++) {
        nvmlGpmMetric_t *out = &m->metrics[i];
        out->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        out->value = 0.0;
        out->metricInfo.shortName = out->metricInfo.longName = out->metricInfo.unit = NULL;
        for (int k = 0; k < GPM_N; k++) {
            if (gpm_metrics[k].id != out->metricId) continue;
            out->metricInfo.shortName = gpm_metrics[k].shortName;
            out->metricInfo.longName = gpm_metrics[k].shortName;
            out->metricInfo.unit = gpm_metrics[k].unit;
            if (b->values[k] >= 0) {
                out->nvmlReturn = NVML_SUCCESS;
                out->value = (double)b->values[k];
            }
        }
    }
    return NVML_SUCCESS;
}

/* -- MIG ------------------------------------------------------------------------------------------------------------
 * A GPU in MIG mode (`gpu I mig 1`) has MIG devices at slots 0..mig_max-1 (`mig GPU SLOT ...` lines); the parent
 * lists every process with its GPU/compute instance ids, and its utilization and per-process utilization answer
 * NOT_SUPPORTED, as the driver does. */

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t dev, unsigned int *current, unsigned int *pending) {
    DEVICE_PROLOGUE("nvmlDeviceGetMigMode", dev);
    if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    if (g->mig < 0) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = (unsigned int)g->mig;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t dev, unsigned int *count) {
    DEVICE_PROLOGUE("nvmlDeviceGetMaxMigDeviceCount", dev);
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    if (g->mig < 0) return NVML_ERROR_NOT_SUPPORTED;
    *count = (unsigned int)g->mig_max;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t dev, unsigned int index, nvmlDevice_t *mig) {
    DEVICE_PROLOGUE("nvmlDeviceGetMigDeviceHandleByIndex", dev);
    if (!mig || g->mig != 1 || index >= (unsigned int)g->mig_max || index >= MAX_MIG)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!sc.migs[gi][index].used) return NVML_ERROR_NOT_FOUND; /* no MIG device at this slot */
    *mig = &mig_devices[gi][index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t dev, unsigned int *isMig) {
    count_call("nvmlDeviceIsMigDeviceHandle");
    if (!isMig) return NVML_ERROR_INVALID_ARGUMENT;
    *isMig = is_mig_handle(dev) ? 1u : 0u;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t dev, nvmlDevice_t *parent) {
    MIG_PROLOGUE("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", dev);
    if (!m || !parent) return NVML_ERROR_INVALID_ARGUMENT;
    *parent = &devices[mgpu];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t dev, unsigned int *id) {
    MIG_PROLOGUE("nvmlDeviceGetGpuInstanceId", dev);
    if (!id) return NVML_ERROR_INVALID_ARGUMENT;
    if (!m) return NVML_ERROR_NOT_SUPPORTED; /* not a MIG device handle */
    *id = (unsigned int)m->gi_id;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t dev, unsigned int *id) {
    MIG_PROLOGUE("nvmlDeviceGetComputeInstanceId", dev);
    if (!id) return NVML_ERROR_INVALID_ARGUMENT;
    if (!m) return NVML_ERROR_NOT_SUPPORTED;
    *id = (unsigned int)m->ci_id;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t dev, nvmlDeviceAttributes_t *a) {
    MIG_PROLOGUE("nvmlDeviceGetAttributes_v2", dev);
    if (!a) return NVML_ERROR_INVALID_ARGUMENT;
    if (!m) return NVML_ERROR_NOT_SUPPORTED; /* only MIG device handles, as documented */
    memset(a, 0, sizeof *a);
    a->multiprocessorCount = (unsigned int)m->sms;
    a->gpuInstanceSliceCount = (unsigned int)m->gi_slices;
    a->computeInstanceSliceCount = (unsigned int)m->ci_slices;
    a->memorySizeMB = (unsigned long long)(m->mem_total >> 20);
    return NVML_SUCCESS;
}

/* -- GPU instances and their profiles (nvml.h) ----------------------------------------------------------------------
 * nvmlDeviceGetGpuInstanceById gives an opaque GPU instance handle; nvmlGpuInstanceGetInfo its device, id, profile id
 * and placement; nvmlDeviceGetGpuInstanceProfileInfoV (nvmlGpuInstanceProfileInfo_v2_t) the profile's sizes and
 * name ("MIG 3g.40gb"). The fake's profile id of a GPU instance is the slot of its first MIG device. The real driver
 * may require root for these (NO_PERMISSION): script that with `error nvmlDeviceGetGpuInstanceById * NO_PERMISSION`. */

#define NVML_GPU_INSTANCE_PROFILE_INFO_V2 0x02000098u
typedef struct { unsigned int start, size; } nvmlGpuInstancePlacement_t;
typedef struct { nvmlDevice_t device; unsigned int id, profileId; nvmlGpuInstancePlacement_t placement; } nvmlGpuInstanceInfo_t;
typedef struct {
    unsigned int version, id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount, copyEngineCount,
        decoderCount, encoderCount, jpegCount, ofaCount;
    unsigned long long memorySizeMB;
    char name[96];
} nvmlGpuInstanceProfileInfo_v2_t;
struct nvmlGpuInstance_st { int gpu, slot; };
typedef struct nvmlGpuInstance_st *nvmlGpuInstance_t;
static struct nvmlGpuInstance_st gpu_instances[MAX_GPUS][MAX_MIG];

nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t dev, unsigned int id, nvmlGpuInstance_t *out) {
    DEVICE_PROLOGUE("nvmlDeviceGetGpuInstanceById", dev);
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (g->mig != 1) return NVML_ERROR_NOT_SUPPORTED;
    for (int k = 0; k < MAX_MIG; k++) {
        if (sc.migs[gi][k].used && sc.migs[gi][k].gi_id == (int)id) {
            gpu_instances[gi][k].gpu = gi;
            gpu_instances[gi][k].slot = k;
            *out = &gpu_instances[gi][k];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t inst, nvmlGpuInstanceInfo_t *info) {
    count_call("nvmlGpuInstanceGetInfo");
    reload();
    if (!init_count) return NVML_ERROR_UNINITIALIZED;
    if (!info || !inst || inst < &gpu_instances[0][0] || inst >= &gpu_instances[0][0] + MAX_GPUS * MAX_MIG)
        return NVML_ERROR_INVALID_ARGUMENT;
    mig_t *m = &sc.migs[inst->gpu][inst->slot];
    if (inst->gpu >= sc.ngpus || !m->used) return NVML_ERROR_INVALID_ARGUMENT; /* destroyed since */
    info->device = &devices[inst->gpu];
    info->id = (unsigned int)m->gi_id;
    info->profileId = (unsigned int)inst->slot;
    info->placement.start = 0;
    info->placement.size = (unsigned int)m->gi_slices;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfoV(nvmlDevice_t dev, unsigned int profile,
                                                  nvmlGpuInstanceProfileInfo_v2_t *info) {
    DEVICE_PROLOGUE("nvmlDeviceGetGpuInstanceProfileInfoV", dev);
    if (!info || profile >= MAX_MIG) return NVML_ERROR_INVALID_ARGUMENT;
    if (info->version != NVML_GPU_INSTANCE_PROFILE_INFO_V2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (g->mig < 0) return NVML_ERROR_NOT_SUPPORTED;
    mig_t *m = &sc.migs[gi][profile];
    if (!m->used) return NVML_ERROR_INVALID_ARGUMENT;
    info->id = profile;
    info->sliceCount = (unsigned int)m->gi_slices;
    info->multiprocessorCount = (unsigned int)m->sms;
    info->memorySizeMB = (unsigned long long)(m->mem_total >> 20);
    snprintf(info->name, sizeof info->name, m->profile[0] ? "MIG %s" : "%s", m->profile);
    return NVML_SUCCESS;
}
