/*  =========================================================================
    perf_main - shmipc-perf: options, the plan, the interleaved run loop,
    and the hidden "--role NAME key=value..." entry point of the children

    Owns the plan and its results. The coordinator never touches czmq: every
    measurement runs in children (perf_spawn.c), each run with a time limit,
    each child reaped, each run's socket files removed.
    =========================================================================
*/

#include "perf.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

//  Messages (round trips) per run: what ipc:// moves in about 0.6 s on a
//  current machine by a simple cost model (a fixed cost per message plus a
//  cost per byte), within bounds; so a run takes roughly 0.5-1 s
#define S_RUN_US            600000.0
#define S_THR_MSG_US        0.25        //  Per message, one way
#define S_THR_BYTES_US      2500.0      //  Bytes per us, one way
#define S_THR_MIN           200
#define S_THR_MAX           2000000
#define S_RTT_MSG_US        20.0        //  Per round trip
#define S_RTT_BYTES_US      2200.0      //  Bytes per us, there and back
#define S_RTT_MIN           200
#define S_RTT_MAX           30000
//  Warm-up round trips: a tenth, within bounds
#define S_WARMUP_MIN        10
#define S_WARMUP_MAX        1000
//  ZeroMQ HWM: 1000 messages (libzmq's default) but at most this many bytes
#define S_HWM_BYTES         (64 << 20)
#define S_HWM_MIN           16
#define S_HWM_DEFAULT       1000

static int s_run_id = 0;            //  For unique endpoint names
static bool s_quiet = false;        //  No progress line

static void
s_usage (FILE *stream)
{
    fprintf (stream,
"Usage: shmipc-perf [options]\n"
"Compares czmq PUSH->PULL throughput and REQ/REP round trips over shm://\n"
"(also with zero-copy receive: shm-zc; and sending loans too: shm-loan),\n"
"ipc://, tcp://127.0.0.1 and inproc://, the core channel without ZeroMQ, and\n"
"the machine's limits, in one run, each side in its own process.\n"
"\n"
"  -s, --size N[K|M]     also measure this message size (repeatable);\n"
"                        defaults: 64, 1K, 64K, 1M\n"
"      --only-sizes      measure only the --size sizes, not the defaults\n"
"  -n, --count N         messages per throughput run and round trips per\n"
"                        round-trip run (default: from a byte budget)\n"
"  -r, --reps N          repetitions, interleaved (default 3)\n"
"  -t, --transports LIST comma-separated: shm,shm-zc,shm-loan,ipc,tcp,inproc,\n"
"                        core,limits\n"
"                        (default: all)\n"
"  -c, --capacity BYTES  shm ring capacity (default 4M)\n"
"      --spin US         core channel spin for the core+spin rows\n"
"                        (default 50; 0 drops those rows)\n"
"      --batch N         core sender: messages per flush (default 32)\n"
"      --hwm N           ZeroMQ HWM (default 1000, at most 64 MiB queued)\n"
"      --timeout SEC     time limit of one run (default 60)\n"
"      --csv             CSV on stdout instead of the table\n"
"      --json            JSON on stdout instead of the table\n"
"      --plot FILE.png   draw throughput and round trip with gnuplot\n"
"      --smoke           very short run (CI): 2 sizes, tiny counts, 1 rep\n"
"  -q, --quiet           no progress line on stderr\n"
"  -h, --help            this help\n");
}

//  --------------------------------------------------------------------------
//  Children: the hidden entry point

static int
s_role_main (int argc, char **argv)
{
    perf_job_t job;
    memset (&job, 0, sizeof job);
    snprintf (job.role, sizeof job.role, "%s", argv [2]);
    perf_set_role (job.role);
    for (int index = 3; index < argc; index++) {
        const char *equals = strchr (argv [index], '=');
        size_t key_size = equals ? (size_t) (equals - argv [index]) : 0;
        if (!equals || key_size >= 16) {
            perf_fail ("bad argument '%s'", argv [index]);
            return 2;
        }
        char key [16];
        memcpy (key, argv [index], key_size);
        key [key_size] = 0;
        const char *value = equals + 1;
        if (strcmp (key, "endpoint") == 0)
            snprintf (job.endpoint, sizeof job.endpoint, "%s", value);
        else {
            unsigned long long number = strtoull (value, NULL, 10);
            if (strcmp (key, "size") == 0)          job.size = (size_t) number;
            else if (strcmp (key, "count") == 0)    job.count = number;
            else if (strcmp (key, "warmup") == 0)   job.warmup = number;
            else if (strcmp (key, "capacity") == 0) job.capacity = (size_t) number;
            else if (strcmp (key, "hwm") == 0)      job.hwm = (int) number;
            else if (strcmp (key, "spin") == 0)     job.spin_us = (int) number;
            else if (strcmp (key, "batch") == 0)    job.batch = (int) number;
            else if (strcmp (key, "timeout") == 0)  job.timeout_s = (int) number;
            else if (strcmp (key, "settle") == 0)   job.settle_ms = (int) number;
            else if (strcmp (key, "memcpy_ms") == 0) job.memcpy_ms = (int) number;
            else if (strcmp (key, "zerocopy") == 0) job.zerocopy = (int) number;
            else if (strcmp (key, "loan") == 0)     job.loan = (int) number;
            else {
                perf_fail ("unknown argument '%s'", key);
                return 2;
            }
        }
    }
    if (strncmp (job.role, "core-", 5) == 0)
        return perf_core_role (&job);
    return perf_zmq_role (&job);
}

//  --------------------------------------------------------------------------
//  Options and the plan

static uint64_t
s_clamp (uint64_t value, uint64_t low, uint64_t high)
{
    return value < low ? low : value > high ? high : value;
}

static int
s_add_size (perf_plan_t *plan, uint64_t size)
{
    for (size_t index = 0; index < plan->nsizes; index++)
        if (plan->sizes [index] == size)
            return 0;
    if (plan->nsizes == PERF_SIZES_MAX) {
        fprintf (stderr, "shmipc-perf: at most %d sizes\n", PERF_SIZES_MAX);
        return -1;
    }
    size_t at = plan->nsizes++;
    while (at > 0 && plan->sizes [at - 1] > size) {
        plan->sizes [at] = plan->sizes [at - 1];
        at--;
    }
    plan->sizes [at] = size;
    return 0;
}

static int
s_parse_transports (perf_plan_t *plan, const char *list)
{
    memset (plan->selected, 0, sizeof plan->selected);
    char copy [256];
    snprintf (copy, sizeof copy, "%s", list);
    char *saved;
    for (char *name = strtok_r (copy, ",", &saved); name; name = strtok_r (NULL, ",", &saved)) {
        if (strcmp (name, "shm") == 0)      plan->selected [PERF_SHM] = true;
        else if (strcmp (name, "shm-zc") == 0) plan->selected [PERF_SHM_ZC] = true;
        else if (strcmp (name, "shm-loan") == 0) plan->selected [PERF_SHM_LOAN] = true;
        else if (strcmp (name, "ipc") == 0) plan->selected [PERF_IPC] = true;
        else if (strcmp (name, "tcp") == 0) plan->selected [PERF_TCP] = true;
        else if (strcmp (name, "inproc") == 0) plan->selected [PERF_INPROC] = true;
        else if (strcmp (name, "core") == 0)
            plan->selected [PERF_CORE] = plan->selected [PERF_CORE_SPIN] = true;
        else if (strcmp (name, "limits") == 0)
            plan->selected [PERF_MEMCPY] = plan->selected [PERF_CACHELINE]
                                         = plan->selected [PERF_EVENTFD] = true;
        else if (strcmp (name, "all") == 0)
            for (int index = 0; index < PERF_TRANSPORTS; index++)
                plan->selected [index] = true;
        else {
            fprintf (stderr, "shmipc-perf: unknown transport '%s' "
                             "(shm, shm-zc, shm-loan, ipc, tcp, inproc, core, limits, all)\n", name);
            return -1;
        }
    }
    return 0;
}

//  Parse a positive number option, or say what is wrong.
static int
s_number (const char *option, const char *text, uint64_t low, uint64_t high, uint64_t *value)
{
    if (perf_parse_size (text, value) || *value < low || *value > high) {
        fprintf (stderr, "shmipc-perf: --%s: '%s' is not a number from %" PRIu64
                 " to %" PRIu64 "\n", option, text, low, high);
        return -1;
    }
    return 0;
}

//  Read the options into plan. Returns 0, 1 for --help, or -1.
static int
s_options (perf_plan_t *plan, int argc, char **argv, int *output, const char **plot)
{
    static const struct option options [] = {
        { "size", required_argument, NULL, 's' },
        { "only-sizes", no_argument, NULL, 'O' },
        { "count", required_argument, NULL, 'n' },
        { "reps", required_argument, NULL, 'r' },
        { "transports", required_argument, NULL, 't' },
        { "capacity", required_argument, NULL, 'c' },
        { "spin", required_argument, NULL, 'S' },
        { "batch", required_argument, NULL, 'B' },
        { "hwm", required_argument, NULL, 'H' },
        { "timeout", required_argument, NULL, 'T' },
        { "csv", no_argument, NULL, 'C' },
        { "json", no_argument, NULL, 'J' },
        { "plot", required_argument, NULL, 'P' },
        { "smoke", no_argument, NULL, 'K' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    uint64_t extra [PERF_SIZES_MAX];
    size_t nextra = 0;
    bool only_sizes = false;
    uint64_t count = 0;
    uint64_t reps = 0;
    uint64_t hwm = 0;
    uint64_t timeout = 0;
    uint64_t value;
    for (int index = 0; index < PERF_TRANSPORTS; index++)
        plan->selected [index] = true;
    plan->capacity = 4 << 20;
    plan->spin_us = 50;
    plan->batch = 32;
    int option;
    while ((option = getopt_long (argc, argv, "s:n:r:t:c:qh", options, NULL)) != -1) {
        switch (option) {
            case 's':
                if (s_number ("size", optarg, 1, 1ULL << 30, &value))
                    return -1;
                if (nextra == PERF_SIZES_MAX) {
                    fprintf (stderr, "shmipc-perf: at most %d sizes\n", PERF_SIZES_MAX);
                    return -1;
                }
                extra [nextra++] = value;
                break;
            case 'O': only_sizes = true; break;
            case 'n':
                if (s_number ("count", optarg, 2, 1ULL << 32, &count))
                    return -1;
                break;
            case 'r':
                if (s_number ("reps", optarg, 1, PERF_REPS_MAX, &reps))
                    return -1;
                break;
            case 't':
                if (s_parse_transports (plan, optarg))
                    return -1;
                break;
            case 'c':
                if (s_number ("capacity", optarg, 64, 1ULL << 30, &value))
                    return -1;
                plan->capacity = (size_t) value;
                break;
            case 'S':
                if (s_number ("spin", optarg, 0, 1000000, &value))
                    return -1;
                plan->spin_us = (int) value;
                break;
            case 'B':
                if (s_number ("batch", optarg, 1, 1 << 20, &value))
                    return -1;
                plan->batch = (int) value;
                break;
            case 'H':
                if (s_number ("hwm", optarg, 1, 1 << 24, &hwm))
                    return -1;
                break;
            case 'T':
                if (s_number ("timeout", optarg, 1, 86400, &timeout))
                    return -1;
                break;
            case 'C': *output = 'C'; break;
            case 'J': *output = 'J'; break;
            case 'P': *plot = optarg; break;
            case 'K': plan->smoke = true; break;
            case 'q': s_quiet = true; break;
            case 'h':
                s_usage (stdout);
                return 1;
            default:
                s_usage (stderr);
                return -1;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "shmipc-perf: unexpected argument '%s'\n", argv [optind]);
        return -1;
    }
    if (only_sizes && nextra == 0) {
        fprintf (stderr, "shmipc-perf: --only-sizes needs --size\n");
        return -1;
    }
    if (!only_sizes) {
        if (plan->smoke) {
            s_add_size (plan, 64);
            s_add_size (plan, 64 << 10);
        }
        else {
            s_add_size (plan, 64);
            s_add_size (plan, 1 << 10);
            s_add_size (plan, 64 << 10);
            s_add_size (plan, 1 << 20);
        }
    }
    for (size_t index = 0; index < nextra; index++)
        if (s_add_size (plan, extra [index]))
            return -1;
    if (plan->spin_us == 0)
        plan->selected [PERF_CORE_SPIN] = false;

    plan->reps = reps ? (int) reps : plan->smoke ? 1 : 3;
    plan->timeout_s = timeout ? (int) timeout : plan->smoke ? 20 : 60;
    plan->settle_ms = plan->smoke ? 20 : 100;
    plan->memcpy_ms = plan->smoke ? 20 : 200;
    plan->fixed_count = count != 0;
    for (size_t index = 0; index < plan->nsizes; index++) {
        uint64_t size = plan->sizes [index];
        if (count)
            plan->thr_count [index] = plan->rtt_count [index] = count;
        else
        if (plan->smoke) {
            plan->thr_count [index] = 2000;
            plan->rtt_count [index] = 200;
        }
        else {
            double thr_us = S_THR_MSG_US + (double) size / S_THR_BYTES_US;
            double rtt_us = S_RTT_MSG_US + (double) size / S_RTT_BYTES_US;
            plan->thr_count [index] = s_clamp ((uint64_t) (S_RUN_US / thr_us),
                                               S_THR_MIN, S_THR_MAX);
            plan->rtt_count [index] = s_clamp ((uint64_t) (S_RUN_US / rtt_us),
                                               S_RTT_MIN, S_RTT_MAX);
        }
        plan->rtt_warmup [index] = s_clamp (plan->rtt_count [index] / 10,
                                            S_WARMUP_MIN, S_WARMUP_MAX);
        plan->hwm [index] = hwm ? (int) hwm
                          : (int) s_clamp (S_HWM_BYTES / size, S_HWM_MIN, S_HWM_DEFAULT);
    }
    plan->limit_count [PERF_CACHELINE] = plan->smoke ? 10000 : 200000;
    plan->limit_warmup [PERF_CACHELINE] = plan->smoke ? 1000 : 10000;
    plan->limit_count [PERF_EVENTFD] = plan->smoke ? 1000 : 20000;
    plan->limit_warmup [PERF_EVENTFD] = plan->smoke ? 100 : 1000;
    return 0;
}

//  Read the machine's description into plan.
static void
s_machine (perf_plan_t *plan)
{
    plan->nproc = sysconf (_SC_NPROCESSORS_ONLN);
    snprintf (plan->cpu, sizeof plan->cpu, "unknown CPU");
    FILE *file = fopen ("/proc/cpuinfo", "r");
    if (file) {
        char line [256];
        while (fgets (line, sizeof line, file))
            if (strncmp (line, "model name", 10) == 0) {
                char *colon = strchr (line, ':');
                if (colon) {
                    colon += 1 + (colon [1] == ' ');
                    colon [strcspn (colon, "\n")] = 0;
                    snprintf (plan->cpu, sizeof plan->cpu, "%s", colon);
                }
                break;
            }
        fclose (file);
    }
    struct utsname name;
    if (uname (&name) == 0)
        snprintf (plan->kernel, sizeof plan->kernel, "%s %s %s",
                  name.sysname, name.release, name.machine);
    time_t now = time (NULL);
    strftime (plan->started, sizeof plan->started, "%Y-%m-%dT%H:%M:%SZ", gmtime (&now));
}

static void
s_loadavg (char *buffer, size_t size)
{
    snprintf (buffer, size, "?");
    FILE *file = fopen ("/proc/loadavg", "r");
    if (file) {
        double one, five, fifteen;
        if (fscanf (file, "%lf %lf %lf", &one, &five, &fifteen) == 3)
            snprintf (buffer, size, "%.2f %.2f %.2f", one, five, fifteen);
        fclose (file);
    }
}

//  --------------------------------------------------------------------------
//  Runs

//  Start the children, server first when it must say READY (its endpoint
//  goes to the others), collect every RESULT, release and reap them all.
//  Copies each child's RESULT into results [child]. Returns 0 or -1.
static int
s_execute (const perf_plan_t *plan, perf_job_t *jobs, perf_role_fn **fns, size_t count,
           bool server_first, char results [][PERF_LINE_MAX])
{
    perf_child_t children [2];
    memset (children, 0, sizeof children);
    int64_t deadline = perf_now_ns () + (int64_t) plan->timeout_s * 1000000000;
    size_t started = 0;
    int rc = -1;
    if (perf_spawn (&children [0], &jobs [0], fns [0])) {
        fprintf (stderr, "\nshmipc-perf: cannot start %s: %s\n", jobs [0].role, strerror (errno));
        goto done;
    }
    started = 1;
    if (server_first) {
        if (perf_spawn_wait (children, 1, true, false, deadline))
            goto done;
        size_t size = strlen (children [0].ready);
        if (size >= sizeof jobs [0].endpoint) {
            fprintf (stderr, "\nshmipc-perf: %s: endpoint too long\n", jobs [0].role);
            goto done;
        }
        for (size_t index = 1; index < count; index++)
            memcpy (jobs [index].endpoint, children [0].ready, size + 1);
    }
    for (; started < count; started++)
        if (perf_spawn (&children [started], &jobs [started], fns [started])) {
            fprintf (stderr, "\nshmipc-perf: cannot start %s: %s\n",
                     jobs [started].role, strerror (errno));
            goto done;
        }
    if (perf_spawn_wait (children, count, false, true, deadline))
        goto done;
    for (size_t index = 0; index < count; index++)
        snprintf (results [index], PERF_LINE_MAX, "%s", children [index].result);
    rc = 0;
done:;
    //  Ten more seconds to close down (libzmq and the shmipc actor); then kill
    int reaped = perf_spawn_finish (children, started, rc != 0,
                                    perf_now_ns () + 10 * 1000000000LL);
    return rc == 0 && reaped == 0 ? 0 : -1;
}

//  Describe a run for messages.
static void
s_describe (const perf_plan_t *plan, perf_kind_t kind, perf_transport_t transport,
            size_t size_index, int rep, char *buffer, size_t size)
{
    char size_text [32];
    if (transport == PERF_CACHELINE || transport == PERF_EVENTFD)
        snprintf (size_text, sizeof size_text, "-");
    else
        perf_format_size (plan->sizes [size_index], size_text, sizeof size_text);
    snprintf (buffer, size, "rep %d/%d  %-10s  %-9s  %s", rep + 1, plan->reps,
              kind == PERF_THR ? "throughput" : "round trip",
              perf_transport_name (transport), size_text);
}

//  Run one measurement; return its sample (ok false on any failure).
static perf_sample_t
s_run (perf_plan_t *plan, perf_kind_t kind, perf_transport_t transport, size_t size_index)
{
    perf_sample_t sample = { .ok = false };
    bool thr = kind == PERF_THR;
    perf_job_t base = {
        .size = plan->sizes [size_index],
        .count = thr ? plan->thr_count [size_index] : plan->rtt_count [size_index],
        .warmup = thr ? 0 : plan->rtt_warmup [size_index],
        .capacity = plan->capacity,
        .hwm = plan->hwm [size_index],
        .spin_us = transport == PERF_CORE_SPIN ? plan->spin_us : 0,
        .batch = plan->batch,
        .timeout_s = plan->timeout_s,
        .settle_ms = plan->settle_ms,
        .memcpy_ms = plan->memcpy_ms,
        .fd_a = -1,
        .fd_b = -1
    };
    perf_job_t jobs [2] = { base, base };
    perf_role_fn *fns [2] = { NULL, NULL };
    size_t count = 2;
    bool server_first = true;
    size_t measure = thr ? 0 : 1;
    char path [128] = "";
    int id = s_run_id++;
    int pid = (int) getpid ();
    const char *roles [2] = {
        thr ? "zmq-thr-recv" : "zmq-rtt-server",
        thr ? "zmq-thr-send" : "zmq-rtt-client"
    };
    void *shared = MAP_FAILED;
    switch (transport) {
        case PERF_SHM:
        case PERF_SHM_ZC:
        case PERF_SHM_LOAN:
            snprintf (path, sizeof path, "/tmp/shmipc-perf-%d-%d.sock", pid, id);
            snprintf (jobs [0].endpoint, sizeof jobs [0].endpoint, "shm://%s", path);
            //  Both children get them; only the receiving sockets use
            //  zerocopy, only the sending ones loan
            jobs [0].zerocopy = jobs [1].zerocopy = transport != PERF_SHM;
            jobs [0].loan = jobs [1].loan = transport == PERF_SHM_LOAN;
            break;
        case PERF_IPC:
            snprintf (path, sizeof path, "/tmp/shmipc-perf-%d-%d.ipc", pid, id);
            snprintf (jobs [0].endpoint, sizeof jobs [0].endpoint, "ipc://%s", path);
            break;
        case PERF_TCP:
            snprintf (jobs [0].endpoint, sizeof jobs [0].endpoint, "tcp://127.0.0.1:*");
            break;
        case PERF_INPROC:
            snprintf (jobs [0].endpoint, sizeof jobs [0].endpoint,
                      "inproc://shmipc-perf-%d-%d", pid, id);
            roles [0] = thr ? "inproc-thr" : "inproc-rtt";
            count = 1;
            server_first = false;
            measure = 0;
            break;
        case PERF_CORE:
        case PERF_CORE_SPIN:
            snprintf (path, sizeof path, "/tmp/shmipc-perf-%d-%d-core.sock", pid, id);
            snprintf (jobs [0].endpoint, sizeof jobs [0].endpoint, "shm://%s", path);
            roles [0] = thr ? "core-thr-recv" : "core-rtt-server";
            roles [1] = thr ? "core-thr-send" : "core-rtt-client";
            break;
        case PERF_MEMCPY:
            roles [0] = "memcpy";
            fns [0] = perf_memcpy_role;
            count = 1;
            server_first = false;
            measure = 0;
            break;
        case PERF_CACHELINE:
        case PERF_EVENTFD:
            for (int index = 0; index < 2; index++) {
                jobs [index].count = plan->limit_count [transport];
                jobs [index].warmup = plan->limit_warmup [transport];
            }
            server_first = false;
            measure = 0;
            if (transport == PERF_CACHELINE) {
                roles [0] = "cacheline-ping";
                roles [1] = "cacheline-pong";
                fns [0] = perf_cacheline_ping;
                fns [1] = perf_cacheline_pong;
                shared = mmap (NULL, 4096, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
                if (shared == MAP_FAILED) {
                    fprintf (stderr, "\nshmipc-perf: mmap: %s\n", strerror (errno));
                    return sample;
                }
                jobs [0].shared = jobs [1].shared = shared;
            }
            else {
                roles [0] = "eventfd-ping";
                roles [1] = "eventfd-pong";
                fns [0] = perf_eventfd_ping;
                fns [1] = perf_eventfd_pong;
                int ping = eventfd (0, EFD_CLOEXEC);
                int pong = eventfd (0, EFD_CLOEXEC);
                if (ping < 0 || pong < 0) {
                    fprintf (stderr, "\nshmipc-perf: eventfd: %s\n", strerror (errno));
                    if (ping >= 0)
                        close (ping);
                    if (pong >= 0)
                        close (pong);
                    return sample;
                }
                jobs [0].fd_a = jobs [1].fd_a = ping;
                jobs [0].fd_b = jobs [1].fd_b = pong;
            }
            break;
        default:
            return sample;
    }
    for (size_t index = 0; index < count; index++)
        snprintf (jobs [index].role, sizeof jobs [index].role, "%s", roles [index]);
    perf_spawn_set_cleanup (path, NULL);
    char results [2][PERF_LINE_MAX] = { "", "" };
    size_t said = measure;          //  Whose RESULT is being read
    const char *result = results [measure];
    int rc = s_execute (plan, jobs, fns, count, server_first, results);
    if (shared != MAP_FAILED)
        munmap (shared, 4096);
    if (jobs [0].fd_a >= 0) {
        close (jobs [0].fd_a);
        close (jobs [0].fd_b);
    }
    if (*path)
        unlink (path);          //  Normally gone already; not after a kill
    perf_spawn_set_cleanup (NULL, NULL);
    if (rc)
        return sample;

    //  Read the measuring child's RESULT, and check it counted right
    uint64_t done, elapsed_ns, median_ns, p99_ns;
    if (transport == PERF_MEMCPY) {
        if (perf_result_u64 (result, "copies", &done)
        ||  perf_result_u64 (result, "elapsed_ns", &elapsed_ns) || elapsed_ns == 0)
            goto bad_result;
        sample.rate = (double) done * 1e9 / (double) elapsed_ns;
    }
    else
    if (thr) {
        if (perf_result_u64 (result, "count", &done)
        ||  perf_result_u64 (result, "elapsed_ns", &elapsed_ns)
        ||  done != jobs [0].count || elapsed_ns == 0)
            goto bad_result;
        //  Timed from the first message to the last: count - 1 intervals
        sample.rate = (double) (done - 1) * 1e9 / (double) elapsed_ns;
    }
    else {
        if (perf_result_u64 (result, "count", &done)
        ||  perf_result_u64 (result, "median_ns", &median_ns)
        ||  perf_result_u64 (result, "p99_ns", &p99_ns)
        ||  done != jobs [measure].count)
            goto bad_result;
        sample.median_us = (double) median_ns / 1000;
        sample.p99_us = (double) p99_ns / 1000;
    }
    //  shm-zc, shm-loan: how many frames the receiving sockets got in
    //  place (THR: the PULL; RTT: both, for both receive); shm-loan: how
    //  many messages the sending sockets built in their loan pool (THR:
    //  the PUSH; RTT: both, for both send)
    if (transport == PERF_SHM_ZC || transport == PERF_SHM_LOAN)
        for (size_t index = 0; index < count; index++) {
            said = index;
            result = results [index];
            bool receives = !thr || index == 0;
            if (receives) {
                uint64_t lent, msgs_in;
                if (perf_result_u64 (result, "frames_lent", &lent)
                ||  perf_result_u64 (result, "msgs_in", &msgs_in))
                    goto bad_result;
                sample.frames_lent += lent;
                sample.msgs_in += msgs_in;
            }
            bool sends = !thr || index == 1;
            if (sends && transport == PERF_SHM_LOAN) {
                uint64_t loaned, sent;
                if (perf_result_u64 (result, "msgs_loaned", &loaned)
                ||  perf_result_u64 (result, "msgs_sent", &sent))
                    goto bad_result;
                sample.msgs_loaned += loaned;
                sample.msgs_sent += sent;
            }
        }
    sample.ok = true;
    return sample;

bad_result:
    fprintf (stderr, "\nshmipc-perf: %s: unexpected RESULT '%s'\n",
             roles [said], result);
    return sample;
}

//  Show where we are on one line of stderr.
static void
s_progress (const perf_plan_t *plan, int done, int total, const char *what, int64_t start_ns)
{
    if (s_quiet)
        return;
    double elapsed = (double) (perf_now_ns () - start_ns) / 1e9;
    fprintf (stderr, "\r[%3d/%3d %4.0fs] %-60s", done + 1, total, elapsed, what);
    fflush (stderr);
}

static void
s_progress_clear (void)
{
    if (!s_quiet) {
        fprintf (stderr, "\r%80s\r", "");
        fflush (stderr);
    }
}

//  Run one measurement and keep its sample.
static void
s_measure (perf_plan_t *plan, perf_kind_t kind, perf_transport_t transport,
           size_t size_index, int rep, int *done, int total, int64_t start_ns)
{
    char what [128];
    s_describe (plan, kind, transport, size_index, rep, what, sizeof what);
    s_progress (plan, *done, total, what, start_ns);
    int64_t run_start = perf_now_ns ();
    perf_sample_t sample = s_run (plan, kind, transport, size_index);
    sample.seconds = (double) (perf_now_ns () - run_start) / 1e9;
    plan->samples [kind][transport][size_index][rep] = sample;
    plan->measured [kind][transport] = true;
    if (!sample.ok) {
        if (plan->failures < 16)
            snprintf (plan->failed [plan->failures], sizeof plan->failed [0], "%s", what);
        plan->failures++;
        fprintf (stderr, "\nshmipc-perf: FAILED: %s\n", what);
    }
    (*done)++;
}

static const perf_transport_t s_thr_order [] = {
    PERF_SHM, PERF_SHM_ZC, PERF_SHM_LOAN, PERF_IPC, PERF_TCP, PERF_INPROC, PERF_CORE,
    PERF_CORE_SPIN, PERF_MEMCPY
};
static const perf_transport_t s_rtt_order [] = {
    PERF_SHM, PERF_SHM_ZC, PERF_SHM_LOAN, PERF_IPC, PERF_TCP, PERF_INPROC, PERF_CORE,
    PERF_CORE_SPIN
};
#define S_COUNT(array) (sizeof (array) / sizeof (array) [0])

//  Run the whole plan: repetition 1 of everything, then repetition 2...
static void
s_run_plan (perf_plan_t *plan)
{
    int per_rep = 0;
    for (size_t index = 0; index < S_COUNT (s_thr_order); index++)
        per_rep += plan->selected [s_thr_order [index]] * (int) plan->nsizes;
    for (size_t index = 0; index < S_COUNT (s_rtt_order); index++)
        per_rep += plan->selected [s_rtt_order [index]] * (int) plan->nsizes;
    per_rep += plan->selected [PERF_CACHELINE] + plan->selected [PERF_EVENTFD];
    int total = per_rep * plan->reps;
    int done = 0;
    int64_t start_ns = perf_now_ns ();
    for (int rep = 0; rep < plan->reps; rep++) {
        for (size_t size_index = 0; size_index < plan->nsizes; size_index++)
            for (size_t index = 0; index < S_COUNT (s_thr_order); index++)
                if (plan->selected [s_thr_order [index]])
                    s_measure (plan, PERF_THR, s_thr_order [index], size_index, rep,
                               &done, total, start_ns);
        for (size_t size_index = 0; size_index < plan->nsizes; size_index++)
            for (size_t index = 0; index < S_COUNT (s_rtt_order); index++)
                if (plan->selected [s_rtt_order [index]])
                    s_measure (plan, PERF_RTT, s_rtt_order [index], size_index, rep,
                               &done, total, start_ns);
        if (plan->selected [PERF_CACHELINE])
            s_measure (plan, PERF_RTT, PERF_CACHELINE, 0, rep, &done, total, start_ns);
        if (plan->selected [PERF_EVENTFD])
            s_measure (plan, PERF_RTT, PERF_EVENTFD, 0, rep, &done, total, start_ns);
    }
    s_progress_clear ();
    plan->seconds = (double) (perf_now_ns () - start_ns) / 1e9;
}

int
main (int argc, char **argv)
{
    if (argc >= 3 && strcmp (argv [1], "--role") == 0)
        return s_role_main (argc, argv);

    perf_plan_t *plan = (perf_plan_t *) calloc (1, sizeof *plan);
    if (!plan) {
        fprintf (stderr, "shmipc-perf: out of memory\n");
        return 1;
    }
    int output = 'T';
    const char *plot = NULL;
    int rc = s_options (plan, argc, argv, &output, &plot);
    if (rc) {
        free (plan);
        return rc > 0 ? 0 : 2;
    }
    if (perf_spawn_init ()) {
        fprintf (stderr, "shmipc-perf: cannot find my own executable\n");
        free (plan);
        return 1;
    }
    perf_spawn_signals ();
    s_machine (plan);
    s_loadavg (plan->load_before, sizeof plan->load_before);
    s_run_plan (plan);
    s_loadavg (plan->load_after, sizeof plan->load_after);

    if (output == 'C')
        perf_report_csv (plan);
    else
    if (output == 'J')
        perf_report_json (plan);
    else
        perf_report_table (plan);
    fflush (stdout);
    if (plot)
        perf_report_plot (plan, plot);
    if (plan->failures)
        fprintf (stderr, "shmipc-perf: %d run%s FAILED\n", plan->failures,
                 plan->failures == 1 ? "" : "s");
    rc = plan->failures ? 1 : 0;
    free (plan);
    return rc;
}
