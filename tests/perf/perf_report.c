/*  =========================================================================
    perf_report - what shmipc-perf prints: the machine and parameters, then
    medians [min-max] over the repetitions with ratios, as a table, CSV or
    JSON; and a gnuplot drawing on request

    Owns nothing; reads the plan.
    =========================================================================
*/

#include "perf.h"
#include "shmipc_common.h"

#include <czmq_library.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

static const char *s_names [PERF_TRANSPORTS] = {
    "shm", "shm-zc", "shm-loan", "ipc", "tcp", "inproc", "core", "core+spin", "memcpy",
    "cacheline", "eventfd"
};

//  The rows of each table, in order
static const perf_transport_t s_thr_rows [] = {
    PERF_SHM, PERF_SHM_ZC, PERF_SHM_LOAN, PERF_IPC, PERF_TCP, PERF_INPROC, PERF_CORE,
    PERF_CORE_SPIN, PERF_MEMCPY
};
static const perf_transport_t s_rtt_rows [] = {
    PERF_SHM, PERF_SHM_ZC, PERF_SHM_LOAN, PERF_IPC, PERF_TCP, PERF_INPROC, PERF_CORE,
    PERF_CORE_SPIN
};
//  The rows that report frames lent to the receivers, and loans made
static const perf_transport_t s_lent_rows [] = { PERF_SHM_ZC, PERF_SHM_LOAN };
static const perf_transport_t s_limit_rows [] = { PERF_CACHELINE, PERF_EVENTFD };
#define S_COUNT(array) (sizeof (array) / sizeof (array) [0])

const char *
perf_transport_name (perf_transport_t transport)
{
    return transport < PERF_TRANSPORTS ? s_names [transport] : "?";
}

static int
s_compare_double (const void *one, const void *two)
{
    double a = *(const double *) one;
    double b = *(const double *) two;
    return a < b ? -1 : a > b;
}

perf_stat_t
perf_summary (const perf_plan_t *plan, perf_kind_t kind, perf_transport_t transport,
              size_t size_index, perf_metric_t metric)
{
    double values [PERF_REPS_MAX];
    int n = 0;
    for (int rep = 0; rep < plan->reps; rep++) {
        const perf_sample_t *sample = &plan->samples [kind][transport][size_index][rep];
        if (!sample->ok)
            continue;
        if (metric == PERF_LENT) {
            //  Only runs that report it (shm-zc, shm-loan), and received
            //  something
            if (sample->msgs_in)
                values [n++] = (double) sample->frames_lent / (double) sample->msgs_in;
        }
        else
        if (metric == PERF_LOANED) {
            //  Only runs that report it (shm-loan), and sent something
            if (sample->msgs_sent)
                values [n++] = (double) sample->msgs_loaned / (double) sample->msgs_sent;
        }
        else
            values [n++] = metric == PERF_RATE ? sample->rate
                         : metric == PERF_MEDIAN ? sample->median_us : sample->p99_us;
    }
    perf_stat_t stat = { .n = n };
    if (n) {
        qsort (values, (size_t) n, sizeof values [0], s_compare_double);
        stat.median = n % 2 ? values [n / 2] : (values [n / 2 - 1] + values [n / 2]) / 2;
        stat.min = values [0];
        stat.max = values [n - 1];
    }
    return stat;
}

const char *
perf_ratio (const perf_plan_t *plan, perf_kind_t kind, perf_transport_t transport,
            size_t size_index, double *ratio)
{
    *ratio = 0;
    perf_metric_t metric = kind == PERF_THR ? PERF_RATE : PERF_MEDIAN;
    perf_stat_t mine = perf_summary (plan, kind, transport, size_index, metric);
    perf_stat_t theirs = { .n = 0 };
    const char *name = NULL;
    if (transport <= PERF_INPROC) {
        if (plan->measured [kind][PERF_IPC]) {
            theirs = perf_summary (plan, kind, PERF_IPC, size_index, metric);
            name = "ipc";
        }
    }
    else
    if (kind == PERF_THR && (transport == PERF_CORE || transport == PERF_CORE_SPIN)) {
        if (plan->measured [kind][PERF_MEMCPY]) {
            theirs = perf_summary (plan, kind, PERF_MEMCPY, size_index, metric);
            name = "memcpy";
        }
    }
    else
    if (kind == PERF_RTT && (transport == PERF_CORE || transport == PERF_CORE_SPIN)) {
        //  The least a copying transport can do: the wake-up round trip
        //  (blocking or spinning) plus four copies of the message (into
        //  and out of a ring, each way)
        perf_transport_t wake = transport == PERF_CORE ? PERF_EVENTFD : PERF_CACHELINE;
        if (plan->measured [kind][wake]) {
            theirs = perf_summary (plan, kind, wake, 0, metric);
            name = transport == PERF_CORE ? "eventfd" : "cacheline";
            perf_stat_t copy = perf_summary (plan, PERF_THR, PERF_MEMCPY, size_index, PERF_RATE);
            if (theirs.n && copy.n && copy.median > 0) {
                theirs.median += 4 * 1e6 / copy.median;
                name = transport == PERF_CORE ? "eventfd+4memcpy" : "cacheline+4memcpy";
            }
        }
    }
    if (name && mine.n && theirs.n && theirs.median > 0)
        *ratio = mine.median / theirs.median;
    return name;
}

//  --------------------------------------------------------------------------
//  Number formatting

//  Three significant digits with k/M/G, no exponent: "1.23M", "456k", "78.7".
static const char *
s_si (double value, char *buffer, size_t size)
{
    static const char *prefixes [] = { "", "k", "M", "G", "T" };
    int prefix = 0;
    while (value >= 999.5 && prefix < 4) {
        value /= 1000;
        prefix++;
    }
    if (value < 9.995)
        snprintf (buffer, size, "%.2f%s", value, prefixes [prefix]);
    else
    if (value < 99.95)
        snprintf (buffer, size, "%.1f%s", value, prefixes [prefix]);
    else
        snprintf (buffer, size, "%.0f%s", value, prefixes [prefix]);
    return buffer;
}

//  A plain number with precision fitting its size: "0.153", "25.3", "4521".
static const char *
s_plain (double value, char *buffer, size_t size)
{
    if (value < 0.9995)
        snprintf (buffer, size, "%.3f", value);
    else
    if (value < 9.995)
        snprintf (buffer, size, "%.2f", value);
    else
    if (value < 999.5)
        snprintf (buffer, size, "%.1f", value);
    else
        snprintf (buffer, size, "%.0f", value);
    return buffer;
}

//  "median [min-max]" (scaled by scale), "FAILED", or with "(n/N)".
static const char *
s_cell (const perf_plan_t *plan, perf_stat_t stat, double scale, bool si,
        char *buffer, size_t size)
{
    if (stat.n == 0) {
        snprintf (buffer, size, "FAILED");
        return buffer;
    }
    char median [32], low [32], high [32];
    if (si) {
        s_si (stat.median * scale, median, sizeof median);
        s_si (stat.min * scale, low, sizeof low);
        s_si (stat.max * scale, high, sizeof high);
    }
    else {
        s_plain (stat.median * scale, median, sizeof median);
        s_plain (stat.min * scale, low, sizeof low);
        s_plain (stat.max * scale, high, sizeof high);
    }
    if (plan->reps == 1)
        snprintf (buffer, size, "%s", median);
    else
    if (stat.n == plan->reps)
        snprintf (buffer, size, "%s [%s-%s]", median, low, high);
    else
        snprintf (buffer, size, "%s [%s-%s] (%d/%d)", median, low, high, stat.n, plan->reps);
    return buffer;
}

static const char *
s_ratio_cell (const perf_plan_t *plan, perf_kind_t kind, perf_transport_t transport,
              size_t size_index, char *buffer, size_t size)
{
    double ratio;
    const char *against = perf_ratio (plan, kind, transport, size_index, &ratio);
    if (!against || ratio == 0)
        snprintf (buffer, size, "%s", against ? "-" : "");
    else
        snprintf (buffer, size, ratio < 0.0995 ? "%.2gx %s" : ratio < 99.5 ? "%.2fx %s"
                                                              : "%.0fx %s",
                  ratio, against);
    return buffer;
}

//  --------------------------------------------------------------------------
//  The header: machine and parameters

static void
s_header (const perf_plan_t *plan, const char *lead)
{
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    printf ("%sshmipc-perf: czmq PUSH->PULL and REQ/REP over shm:// ipc:// tcp:// inproc://,"
            " the core channel, the machine's limits\n", lead);
    printf ("%smachine     %ld CPUs online, %s, %s\n", lead, plan->nproc, plan->cpu, plan->kernel);
    printf ("%sload        %s at start, %s at end; started %s, took %.0f s\n", lead,
            plan->load_before, plan->load_after, plan->started, plan->seconds);
    printf ("%slibraries   shmipc %d.%d.%d, czmq %d.%d.%d, libzmq %d.%d.%d\n", lead,
            SHMIPC_VERSION_MAJOR, SHMIPC_VERSION_MINOR, SHMIPC_VERSION_PATCH,
            CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH, major, minor, patch);
    printf ("%sreps        %d, interleaved (rep 1 of every run, then rep 2...);"
            " cells: median [min-max] over reps\n", lead, plan->reps);
    printf ("%stransports ", lead);
    for (int index = 0; index < PERF_TRANSPORTS; index++)
        if (plan->selected [index])
            printf (" %s", s_names [index]);
    printf ("%s\n", plan->smoke ? "   (--smoke)" : "");
    printf ("%scounts      size       throughput msgs   round trips (+warm-up)   ZeroMQ HWM%s\n",
            lead, plan->fixed_count ? "   (--count)" : "");
    for (size_t index = 0; index < plan->nsizes; index++) {
        char size [32];
        printf ("%s            %-10s %-17" PRIu64 " %-8" PRIu64 " (+%" PRIu64 ")%*s%d\n",
                lead, perf_format_size (plan->sizes [index], size, sizeof size),
                plan->thr_count [index], plan->rtt_count [index], plan->rtt_warmup [index],
                (int) (14 - snprintf (NULL, 0, "%" PRIu64, plan->rtt_warmup [index])), "",
                plan->hwm [index]);
    }
    char capacity [32];
    printf ("%sshm          ring capacity %s each way (shmipc_set_capacity, channel capacity)\n",
            lead, perf_format_size (plan->capacity, capacity, sizeof capacity));
    printf ("%sshm-zc       as shm, and the receiving sockets (PULL; REQ and REP) call"
            " shmipc_set_zerocopy before attaching\n", lead);
    printf ("%sshm-loan     as shm-zc, and the sending sockets (PUSH; REQ and REP) build each"
            " message with shmipc_msg_init_loan,\n", lead);
    printf ("%s             fill it with one memcpy (REP: of the request) and send it with"
            " zmq_msg_send\n", lead);
    printf ("%score         sender: sendv SHMIPC_DEFER, flush every %d msgs (at most capacity/4"
            " unpublished); receiver: recv_view, in place;\n", lead, plan->batch);
    printf ("%s             core: spin 0 (blocking); core+spin: shmipc_channel_set_spin %d us"
            " on both sides\n", lead, plan->spin_us);
    printf ("%slimits       memcpy: %d ms per size, single thread, ring of buffers of the size"
            " (<= 64, ~256 KiB) when small;\n", lead, plan->memcpy_ms);
    printf ("%s             cacheline: %" PRIu64 " round trips (+%" PRIu64 "), two processes"
            " busy polling two atomic words in a MAP_SHARED page;\n", lead,
            plan->limit_count [PERF_CACHELINE], plan->limit_warmup [PERF_CACHELINE]);
    printf ("%s             eventfd: %" PRIu64 " round trips (+%" PRIu64 "), two processes,"
            " blocking read/write on two eventfds\n", lead,
            plan->limit_count [PERF_EVENTFD], plan->limit_warmup [PERF_EVENTFD]);
    printf ("%smethod       throughput: receiver times first to last message, (count-1)/elapsed;"
            " MB/s = 10^6 bytes/s; the ZeroMQ\n", lead);
    printf ("%s             sender waits %d ms after connect, then zmq_send from a filled buffer;"
            " round trip: the client times each\n", lead, plan->settle_ms);
    printf ("%s             round trip with CLOCK_MONOTONIC, warm-up excluded; each side is a"
            " process (inproc: a thread); %d s per run\n", lead, plan->timeout_s);
    printf ("%schecks       every message: size, sequence number (first 8 bytes) and tail mark;"
            " exact count; no extra message\n", lead);
}

//  --------------------------------------------------------------------------
//  Table

//  An eventfd round trip below this many us: the fast-wake mood.
#define S_FAST_WAKE_US  10

void
perf_report_table (const perf_plan_t *plan)
{
    s_header (plan, "");
    char size [32], cell1 [128], cell2 [128], ratio [32];
    bool any_thr = false, any_rtt = false;
    for (size_t row = 0; row < S_COUNT (s_thr_rows); row++)
        any_thr |= plan->measured [PERF_THR][s_thr_rows [row]];
    for (size_t row = 0; row < S_COUNT (s_rtt_rows); row++)
        any_rtt |= plan->measured [PERF_RTT][s_rtt_rows [row]];

    if (any_thr) {
        printf ("\nTHROUGHPUT, one way         ratio: ZeroMQ rows X/ipc (above 1: faster than ipc);"
                " core rows core/memcpy at the size\n");
        printf ("%-8s  %-10s  %-28s  %-28s  %s\n", "size", "transport", "msgs/s", "MB/s", "ratio");
        for (size_t index = 0; index < plan->nsizes; index++) {
            bool first = true;
            for (size_t row = 0; row < S_COUNT (s_thr_rows); row++) {
                perf_transport_t transport = s_thr_rows [row];
                if (!plan->measured [PERF_THR][transport])
                    continue;
                perf_stat_t rate = perf_summary (plan, PERF_THR, transport, index, PERF_RATE);
                printf ("%-8s  %-10s  %-28s  %-28s  %s\n",
                        first ? perf_format_size (plan->sizes [index], size, sizeof size) : "",
                        s_names [transport],
                        s_cell (plan, rate, 1, true, cell1, sizeof cell1),
                        s_cell (plan, rate, (double) plan->sizes [index] / 1e6, false,
                                cell2, sizeof cell2),
                        s_ratio_cell (plan, PERF_THR, transport, index, ratio, sizeof ratio));
                first = false;
            }
        }
    }
    if (any_rtt) {
        printf ("\nROUND TRIP, us              ratio of medians: ZeroMQ rows X/ipc (below 1: faster"
                " than ipc);\n                            core/(eventfd + 4 memcpy of the size), core+spin/(cacheline + 4 memcpy)\n");
        printf ("%-8s  %-10s  %-28s  %-28s  %s\n", "size", "transport", "median",
                "p99", "ratio");
        for (size_t index = 0; index < plan->nsizes; index++) {
            bool first = true;
            for (size_t row = 0; row < S_COUNT (s_rtt_rows); row++) {
                perf_transport_t transport = s_rtt_rows [row];
                if (!plan->measured [PERF_RTT][transport])
                    continue;
                printf ("%-8s  %-10s  %-28s  %-28s  %s\n",
                        first ? perf_format_size (plan->sizes [index], size, sizeof size) : "",
                        s_names [transport],
                        s_cell (plan, perf_summary (plan, PERF_RTT, transport, index,
                                                    PERF_MEDIAN), 1, false, cell1, sizeof cell1),
                        s_cell (plan, perf_summary (plan, PERF_RTT, transport, index,
                                                    PERF_P99), 1, false, cell2, sizeof cell2),
                        s_ratio_cell (plan, PERF_RTT, transport, index, ratio, sizeof ratio));
                first = false;
            }
        }
    }
    bool any_lent = false;
    for (size_t row = 0; row < S_COUNT (s_lent_rows); row++)
        any_lent |= plan->measured [PERF_THR][s_lent_rows [row]]
                 || plan->measured [PERF_RTT][s_lent_rows [row]];
    if (any_lent) {
        //  Whether zero copy happened: frames of 64 KiB and up are lent
        //  only while the receiver holds under half the sender's ring and
        //  under 64 frames (ZeroMQ's queues count); the rest are copied
        printf ("\nZERO-COPY RECEIVE, frames lent / messages received by the receiving"
                " sockets (shmipc_sock_stats);\n                            round trip:"
                " REQ and REP together; frames of 64 KiB and up can be lent\n");
        printf ("%-8s  %-10s  %-28s  %s\n", "size", "transport", "throughput", "round trip");
        for (size_t index = 0; index < plan->nsizes; index++) {
            bool first = true;
            for (size_t row = 0; row < S_COUNT (s_lent_rows); row++) {
                perf_transport_t transport = s_lent_rows [row];
                if (!plan->measured [PERF_THR][transport] && !plan->measured [PERF_RTT][transport])
                    continue;
                char *cells [PERF_KINDS] = { cell1, cell2 };
                for (int kind = 0; kind < PERF_KINDS; kind++)
                    if (plan->measured [kind][transport])
                        s_cell (plan, perf_summary (plan, (perf_kind_t) kind, transport, index,
                                                    PERF_LENT), 1, false, cells [kind], 128);
                    else
                        snprintf (cells [kind], 128, "-");
                printf ("%-8s  %-10s  %-28s  %s\n",
                        first ? perf_format_size (plan->sizes [index], size, sizeof size) : "",
                        s_names [transport], cell1, cell2);
                first = false;
            }
        }
    }
    if (plan->measured [PERF_THR][PERF_SHM_LOAN] || plan->measured [PERF_RTT][PERF_SHM_LOAN]) {
        //  Whether the senders got loans: not under 4 KiB, nor while the
        //  pool has no room (then shmipc_msg_init_loan gives an ordinary
        //  message, copied into the ring as in shm)
        printf ("\nLOANS, messages built in the loan pool / messages built by the sending"
                " sockets;\n                            round trip: REQ and REP together;"
                " messages of 4 KiB and up can be loans\n");
        printf ("%-8s  %-10s  %-28s  %s\n", "size", "transport", "throughput", "round trip");
        for (size_t index = 0; index < plan->nsizes; index++) {
            char *cells [PERF_KINDS] = { cell1, cell2 };
            for (int kind = 0; kind < PERF_KINDS; kind++)
                if (plan->measured [kind][PERF_SHM_LOAN])
                    s_cell (plan, perf_summary (plan, (perf_kind_t) kind, PERF_SHM_LOAN, index,
                                                PERF_LOANED), 1, false, cells [kind], 128);
                else
                    snprintf (cells [kind], 128, "-");
            printf ("%-8s  %-10s  %-28s  %s\n",
                    perf_format_size (plan->sizes [index], size, sizeof size),
                    s_names [PERF_SHM_LOAN], cell1, cell2);
        }
    }
    if (plan->measured [PERF_RTT][PERF_CACHELINE] || plan->measured [PERF_RTT][PERF_EVENTFD]) {
        printf ("\nMACHINE LIMITS, round trip between two processes, us\n");
        printf ("%-20s  %-28s  %-28s\n", "", "median", "p99");
        for (size_t row = 0; row < S_COUNT (s_limit_rows); row++) {
            perf_transport_t transport = s_limit_rows [row];
            if (!plan->measured [PERF_RTT][transport])
                continue;
            printf ("%-20s  %-28s  %-28s\n",
                    transport == PERF_CACHELINE ? "cache-line (spin)" : "eventfd (blocking)",
                    s_cell (plan, perf_summary (plan, PERF_RTT, transport, 0, PERF_MEDIAN),
                            1, false, cell1, sizeof cell1),
                    s_cell (plan, perf_summary (plan, PERF_RTT, transport, 0, PERF_P99),
                            1, false, cell2, sizeof cell2));
        }
    }
    if (plan->measured [PERF_RTT][PERF_EVENTFD]) {
        //  The machine wakes a sleeping thread in about 2 us in one mood
        //  and about 50 us in the other, and no command picks one: say
        //  which this run had, since every round trip depends on it
        double wake = perf_summary (plan, PERF_RTT, PERF_EVENTFD, 0, PERF_MEDIAN).median;
        printf ("\nWAKE MOOD: %s (eventfd round trip %.1f us; fast below %d us)\n",
                wake < S_FAST_WAKE_US ? "fast" : "slow", wake, S_FAST_WAKE_US);
    }
    if (plan->failures) {
        printf ("\nFAILED RUNS: %d\n", plan->failures);
        for (int index = 0; index < plan->failures && index < 16; index++)
            printf ("  %s\n", plan->failed [index]);
    }
}

//  --------------------------------------------------------------------------
//  CSV

static void
s_csv_row (const perf_plan_t *plan, const char *kind, perf_transport_t transport,
           uint64_t size, uint64_t count, uint64_t warmup, const char *metric,
           perf_stat_t stat, double scale, double ratio, const char *against)
{
    printf ("%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%d,%d,%s,", kind, s_names [transport],
            size, count, warmup, plan->reps, stat.n, metric);
    if (stat.n)
        printf ("%.6g,%.6g,%.6g,", stat.median * scale, stat.min * scale, stat.max * scale);
    else
        printf (",,,");
    if (against && ratio > 0)
        printf ("%.4f,%s\n", ratio, against);
    else
        printf (",\n");
}

void
perf_report_csv (const perf_plan_t *plan)
{
    s_header (plan, "# ");
    printf ("kind,transport,size,count,warmup,reps,reps_ok,metric,median,min,max,"
            "ratio,ratio_against\n");
    for (size_t index = 0; index < plan->nsizes; index++)
        for (size_t row = 0; row < S_COUNT (s_thr_rows); row++) {
            perf_transport_t transport = s_thr_rows [row];
            if (!plan->measured [PERF_THR][transport])
                continue;
            double ratio;
            const char *against = perf_ratio (plan, PERF_THR, transport, index, &ratio);
            perf_stat_t rate = perf_summary (plan, PERF_THR, transport, index, PERF_RATE);
            uint64_t count = transport == PERF_MEMCPY ? 0 : plan->thr_count [index];
            s_csv_row (plan, "throughput", transport, plan->sizes [index], count, 0,
                       "msgs_per_s", rate, 1, ratio, against);
            s_csv_row (plan, "throughput", transport, plan->sizes [index], count, 0,
                       "MB_per_s", rate, (double) plan->sizes [index] / 1e6, ratio, against);
            if (transport == PERF_SHM_ZC || transport == PERF_SHM_LOAN)
                s_csv_row (plan, "throughput", transport, plan->sizes [index], count, 0,
                           "lent_fraction", perf_summary (plan, PERF_THR, transport, index,
                                                          PERF_LENT), 1, 0, NULL);
            if (transport == PERF_SHM_LOAN)
                s_csv_row (plan, "throughput", transport, plan->sizes [index], count, 0,
                           "loaned_fraction", perf_summary (plan, PERF_THR, transport, index,
                                                            PERF_LOANED), 1, 0, NULL);
        }
    for (size_t index = 0; index < plan->nsizes; index++)
        for (size_t row = 0; row < S_COUNT (s_rtt_rows); row++) {
            perf_transport_t transport = s_rtt_rows [row];
            if (!plan->measured [PERF_RTT][transport])
                continue;
            double ratio;
            const char *against = perf_ratio (plan, PERF_RTT, transport, index, &ratio);
            s_csv_row (plan, "round_trip", transport, plan->sizes [index],
                       plan->rtt_count [index], plan->rtt_warmup [index], "median_us",
                       perf_summary (plan, PERF_RTT, transport, index, PERF_MEDIAN), 1,
                       ratio, against);
            s_csv_row (plan, "round_trip", transport, plan->sizes [index],
                       plan->rtt_count [index], plan->rtt_warmup [index], "p99_us",
                       perf_summary (plan, PERF_RTT, transport, index, PERF_P99), 1,
                       0, NULL);
            if (transport == PERF_SHM_ZC || transport == PERF_SHM_LOAN)
                s_csv_row (plan, "round_trip", transport, plan->sizes [index],
                           plan->rtt_count [index], plan->rtt_warmup [index], "lent_fraction",
                           perf_summary (plan, PERF_RTT, transport, index, PERF_LENT), 1,
                           0, NULL);
            if (transport == PERF_SHM_LOAN)
                s_csv_row (plan, "round_trip", transport, plan->sizes [index],
                           plan->rtt_count [index], plan->rtt_warmup [index], "loaned_fraction",
                           perf_summary (plan, PERF_RTT, transport, index, PERF_LOANED), 1,
                           0, NULL);
        }
    for (size_t row = 0; row < S_COUNT (s_limit_rows); row++) {
        perf_transport_t transport = s_limit_rows [row];
        if (!plan->measured [PERF_RTT][transport])
            continue;
        s_csv_row (plan, "round_trip", transport, 8, plan->limit_count [transport],
                   plan->limit_warmup [transport], "median_us",
                   perf_summary (plan, PERF_RTT, transport, 0, PERF_MEDIAN), 1, 0, NULL);
        s_csv_row (plan, "round_trip", transport, 8, plan->limit_count [transport],
                   plan->limit_warmup [transport], "p99_us",
                   perf_summary (plan, PERF_RTT, transport, 0, PERF_P99), 1, 0, NULL);
    }
    for (int index = 0; index < plan->failures && index < 16; index++)
        printf ("# FAILED: %s\n", plan->failed [index]);
}

//  --------------------------------------------------------------------------
//  JSON

static void
s_json_string (const char *text)
{
    putchar ('"');
    for (const unsigned char *at = (const unsigned char *) text; *at; at++)
        if (*at == '"' || *at == '\\')
            printf ("\\%c", *at);
        else
        if (*at < 0x20)
            printf ("\\u%04x", *at);
        else
            putchar (*at);
    putchar ('"');
}

static void
s_json_stat (const char *name, perf_stat_t stat, double scale)
{
    printf ("\"%s\": ", name);
    if (stat.n)
        printf ("{\"median\": %.6g, \"min\": %.6g, \"max\": %.6g, \"n\": %d}",
                stat.median * scale, stat.min * scale, stat.max * scale, stat.n);
    else
        printf ("null");
}

//  One result object; size_index for the sample, size as reported.
static void
s_json_result (const perf_plan_t *plan, perf_kind_t kind, perf_transport_t transport,
               size_t size_index, uint64_t size, uint64_t count, uint64_t warmup, bool *first)
{
    printf ("%s\n    {\"kind\": \"%s\", \"transport\": \"%s\", \"size\": %" PRIu64
            ", \"count\": %" PRIu64 ", \"warmup\": %" PRIu64 ", ",
            *first ? "" : ",", kind == PERF_THR ? "throughput" : "round_trip",
            s_names [transport], size, count, warmup);
    *first = false;
    if (kind == PERF_THR) {
        perf_stat_t rate = perf_summary (plan, kind, transport, size_index, PERF_RATE);
        s_json_stat ("msgs_per_s", rate, 1);
        printf (", ");
        s_json_stat ("MB_per_s", rate, (double) size / 1e6);
    }
    else {
        s_json_stat ("median_us", perf_summary (plan, kind, transport, size_index,
                                                PERF_MEDIAN), 1);
        printf (", ");
        s_json_stat ("p99_us", perf_summary (plan, kind, transport, size_index, PERF_P99), 1);
    }
    double ratio;
    const char *against = perf_ratio (plan, kind, transport, size_index, &ratio);
    if (against && ratio > 0)
        printf (", \"ratio\": %.4f, \"ratio_against\": \"%s\"", ratio, against);
    if (transport == PERF_SHM_ZC || transport == PERF_SHM_LOAN) {
        //  frames_lent / msgs_in of the receiving sockets
        printf (", ");
        s_json_stat ("lent_fraction", perf_summary (plan, kind, transport, size_index,
                                                    PERF_LENT), 1);
    }
    if (transport == PERF_SHM_LOAN) {
        //  msgs_loaned / msgs_sent of the sending sockets
        printf (", ");
        s_json_stat ("loaned_fraction", perf_summary (plan, kind, transport, size_index,
                                                      PERF_LOANED), 1);
    }
    printf (", \"reps\": [");
    for (int rep = 0; rep < plan->reps; rep++) {
        const perf_sample_t *sample = &plan->samples [kind][transport][size_index][rep];
        printf ("%s", rep ? ", " : "");
        if (!sample->ok)
            printf ("null");
        else
        if (kind == PERF_THR)
            printf ("{\"msgs_per_s\": %.6g, \"seconds\": %.3f", sample->rate,
                    sample->seconds);
        else
            printf ("{\"median_us\": %.6g, \"p99_us\": %.6g, \"seconds\": %.3f",
                    sample->median_us, sample->p99_us, sample->seconds);
        if (transport == PERF_SHM_ZC || transport == PERF_SHM_LOAN)
            printf (", \"frames_lent\": %" PRIu64 ", \"msgs_in\": %" PRIu64,
                    sample->frames_lent, sample->msgs_in);
        if (transport == PERF_SHM_LOAN)
            printf (", \"msgs_loaned\": %" PRIu64 ", \"msgs_sent\": %" PRIu64,
                    sample->msgs_loaned, sample->msgs_sent);
        printf ("}");
    }
    printf ("]}");
}

void
perf_report_json (const perf_plan_t *plan)
{
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    printf ("{\n  \"tool\": \"shmipc-perf\",\n  \"machine\": {\"nproc\": %ld, \"cpu\": ",
            plan->nproc);
    s_json_string (plan->cpu);
    printf (", \"kernel\": ");
    s_json_string (plan->kernel);
    printf (", \"load_start\": \"%s\", \"load_end\": \"%s\", \"started\": \"%s\","
            " \"seconds\": %.1f},\n", plan->load_before, plan->load_after, plan->started,
            plan->seconds);
    printf ("  \"libraries\": {\"shmipc\": \"%d.%d.%d\", \"czmq\": \"%d.%d.%d\","
            " \"libzmq\": \"%d.%d.%d\"},\n",
            SHMIPC_VERSION_MAJOR, SHMIPC_VERSION_MINOR, SHMIPC_VERSION_PATCH,
            CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH, major, minor, patch);
    printf ("  \"parameters\": {\"reps\": %d, \"smoke\": %s, \"transports\": [", plan->reps,
            plan->smoke ? "true" : "false");
    bool first = true;
    for (int index = 0; index < PERF_TRANSPORTS; index++)
        if (plan->selected [index]) {
            printf ("%s\"%s\"", first ? "" : ", ", s_names [index]);
            first = false;
        }
    printf ("], \"capacity\": %zu, \"spin_us\": %d, \"batch\": %d, \"timeout_s\": %d,"
            " \"settle_ms\": %d, \"memcpy_ms\": %d,\n    \"sizes\": [",
            plan->capacity, plan->spin_us, plan->batch, plan->timeout_s, plan->settle_ms,
            plan->memcpy_ms);
    for (size_t index = 0; index < plan->nsizes; index++)
        printf ("%s{\"size\": %" PRIu64 ", \"throughput_count\": %" PRIu64
                ", \"round_trips\": %" PRIu64 ", \"warmup\": %" PRIu64 ", \"hwm\": %d}",
                index ? ", " : "", plan->sizes [index], plan->thr_count [index],
                plan->rtt_count [index], plan->rtt_warmup [index], plan->hwm [index]);
    printf ("]},\n  \"results\": [");
    first = true;
    for (size_t index = 0; index < plan->nsizes; index++)
        for (size_t row = 0; row < S_COUNT (s_thr_rows); row++)
            if (plan->measured [PERF_THR][s_thr_rows [row]])
                s_json_result (plan, PERF_THR, s_thr_rows [row], index, plan->sizes [index],
                               s_thr_rows [row] == PERF_MEMCPY ? 0 : plan->thr_count [index],
                               0, &first);
    for (size_t index = 0; index < plan->nsizes; index++)
        for (size_t row = 0; row < S_COUNT (s_rtt_rows); row++)
            if (plan->measured [PERF_RTT][s_rtt_rows [row]])
                s_json_result (plan, PERF_RTT, s_rtt_rows [row], index, plan->sizes [index],
                               plan->rtt_count [index], plan->rtt_warmup [index], &first);
    for (size_t row = 0; row < S_COUNT (s_limit_rows); row++)
        if (plan->measured [PERF_RTT][s_limit_rows [row]])
            s_json_result (plan, PERF_RTT, s_limit_rows [row], 0, 8,
                           plan->limit_count [s_limit_rows [row]],
                           plan->limit_warmup [s_limit_rows [row]], &first);
    printf ("\n  ],\n  \"failures\": [");
    for (int index = 0; index < plan->failures && index < 16; index++) {
        printf ("%s", index ? ", " : "");
        s_json_string (plan->failed [index]);
    }
    printf ("]\n}\n");
}

//  --------------------------------------------------------------------------
//  Plot

//  Return true if an executable named name is on the PATH.
static bool
s_on_path (const char *name)
{
    const char *path = getenv ("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char copy [4096];
    snprintf (copy, sizeof copy, "%s", path);
    char *saved;
    for (char *dir = strtok_r (copy, ":", &saved); dir; dir = strtok_r (NULL, ":", &saved)) {
        char candidate [4352];
        snprintf (candidate, sizeof candidate, "%s/%s", *dir ? dir : ".", name);
        if (access (candidate, X_OK) == 0)
            return true;
    }
    return false;
}

//  Write one data block: size and the median of metric (scaled by size
//  for MB/s). Returns true if it has any point.
static bool
s_plot_block (FILE *gnuplot, const perf_plan_t *plan, perf_kind_t kind,
              perf_transport_t transport, perf_metric_t metric, bool megabytes)
{
    fprintf (gnuplot, "$%s_%d << EOD\n", kind == PERF_THR ? "thr" : "rtt", (int) transport);
    bool any = false;
    for (size_t index = 0; index < plan->nsizes; index++) {
        perf_stat_t stat = perf_summary (plan, kind, transport, index, metric);
        if (stat.n) {
            double scale = megabytes ? (double) plan->sizes [index] / 1e6 : 1;
            fprintf (gnuplot, "%" PRIu64 " %.6g\n", plan->sizes [index], stat.median * scale);
            any = true;
        }
    }
    fprintf (gnuplot, "EOD\n");
    return any;
}

int
perf_report_plot (const perf_plan_t *plan, const char *path)
{
    if (!s_on_path ("gnuplot")) {
        fprintf (stderr, "shmipc-perf: gnuplot is not installed: no plot (%s)\n", path);
        return -1;
    }
    if (strchr (path, '\'')) {
        fprintf (stderr, "shmipc-perf: --plot: no quotes in the file name, please\n");
        return -1;
    }
    FILE *gnuplot = popen ("gnuplot", "w");
    if (!gnuplot) {
        fprintf (stderr, "shmipc-perf: cannot run gnuplot\n");
        return -1;
    }
    fprintf (gnuplot,
             "set terminal pngcairo size 1400,560 noenhanced font ',10'\n"
             "set output '%s'\n"
             "set multiplot layout 1,2 title 'shmipc-perf: %ld CPUs, %s; medians over reps (%d)'\n"
             "set logscale x 2\nset logscale y 10\n"
             "set grid\nset key below\nset xtics (",
             path, plan->nproc, plan->kernel, plan->reps);
    for (size_t index = 0; index < plan->nsizes; index++) {
        char size [32];
        fprintf (gnuplot, "%s'%s' %" PRIu64, index ? ", " : "",
                 perf_format_size (plan->sizes [index], size, sizeof size),
                 plan->sizes [index]);
    }
    fprintf (gnuplot, ")\nset xrange [%g:%g]\n", (double) plan->sizes [0] / 1.5,
             (double) plan->sizes [plan->nsizes - 1] * 1.5);
    bool thr [PERF_TRANSPORTS] = { false };
    bool rtt [PERF_TRANSPORTS] = { false };
    for (size_t row = 0; row < S_COUNT (s_thr_rows); row++)
        if (plan->measured [PERF_THR][s_thr_rows [row]])
            thr [s_thr_rows [row]] = s_plot_block (gnuplot, plan, PERF_THR, s_thr_rows [row],
                                                   PERF_RATE, true);
    for (size_t row = 0; row < S_COUNT (s_rtt_rows); row++)
        if (plan->measured [PERF_RTT][s_rtt_rows [row]])
            rtt [s_rtt_rows [row]] = s_plot_block (gnuplot, plan, PERF_RTT, s_rtt_rows [row],
                                                   PERF_MEDIAN, false);
    fprintf (gnuplot, "set title 'Throughput, one way (MB/s), by message size'\nset ylabel 'MB/s'\nplot");
    bool first = true;
    for (size_t row = 0; row < S_COUNT (s_thr_rows); row++) {
        perf_transport_t transport = s_thr_rows [row];
        if (!thr [transport])
            continue;
        fprintf (gnuplot, "%s $thr_%d with linespoints lw 2 title '%s'", first ? "" : ",",
                 (int) transport, s_names [transport]);
        first = false;
    }
    if (first)
        fprintf (gnuplot, " 1/0 notitle");
    fprintf (gnuplot, "\nset title 'Round trip, median (us), by message size'\nset ylabel 'us'\nplot");
    first = true;
    for (size_t row = 0; row < S_COUNT (s_rtt_rows); row++) {
        perf_transport_t transport = s_rtt_rows [row];
        if (!rtt [transport])
            continue;
        fprintf (gnuplot, "%s $rtt_%d with linespoints lw 2 title '%s'", first ? "" : ",",
                 (int) transport, s_names [transport]);
        first = false;
    }
    for (size_t row = 0; row < S_COUNT (s_limit_rows); row++) {
        perf_transport_t transport = s_limit_rows [row];
        perf_stat_t stat = perf_summary (plan, PERF_RTT, transport, 0, PERF_MEDIAN);
        if (stat.n) {
            fprintf (gnuplot, "%s %.6g with lines dashtype 2 lw 2 lc rgb '%s' title '%s (limit)'",
                     first ? "" : ",", stat.median,
                     transport == PERF_CACHELINE ? "black" : "gray40", s_names [transport]);
            first = false;
        }
    }
    if (first)
        fprintf (gnuplot, " 1/0 notitle");
    fprintf (gnuplot, "\nunset multiplot\n");
    int status = pclose (gnuplot);
    if (status == -1 || !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        fprintf (stderr, "shmipc-perf: gnuplot failed: no plot\n");
        return -1;
    }
    fprintf (stderr, "shmipc-perf: plot written to %s\n", path);
    return 0;
}
