/*  =========================================================================
    perf - shmipc-perf: shared types and helpers

    Owns nothing. The coordinator (perf_main.c, perf_spawn.c, perf_report.c)
    never touches czmq or a ZeroMQ context (only zmq_version): every
    measurement runs in child processes, exec'd
    with a hidden --role argument (perf_zmq.c, perf_core.c) or, for the
    machine's limits, forked (perf_limits.c).
    =========================================================================
*/

#ifndef PERF_H_INCLUDED
#define PERF_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/types.h>

#define PERF_SIZES_MAX      32          //  Message sizes in one run
#define PERF_REPS_MAX       100         //  Repetitions
#define PERF_LINE_MAX       1024        //  Longest protocol line

//  What a run measures.
typedef enum {
    PERF_THR,                   //  Throughput, one way
    PERF_RTT,                   //  Round trip, ping-pong
    PERF_KINDS
} perf_kind_t;

//  Who is measured: the ZeroMQ transports, the core channel without ZeroMQ
//  (blocking and spinning), and the machine's limits.
typedef enum {
    PERF_SHM,                   //  czmq socket, shm:// endpoint
    PERF_SHM_ZC,                //  The same, receiving sockets with
                                //  shmipc_set_zerocopy
    PERF_SHM_LOAN,              //  As shm-zc, and the senders build each
                                //  message with shmipc_msg_init_loan
    PERF_IPC,                   //  czmq socket, ipc://
    PERF_TCP,                   //  czmq socket, tcp://127.0.0.1
    PERF_INPROC,                //  czmq socket, inproc:// (two threads)
    PERF_CORE,                  //  shmipc_channel_t, spin 0
    PERF_CORE_SPIN,             //  shmipc_channel_t, spin --spin us
    PERF_MEMCPY,                //  Limit: memcpy of the message size
    PERF_CACHELINE,             //  Limit: cache-line ping-pong
    PERF_EVENTFD,               //  Limit: eventfd ping-pong
    PERF_TRANSPORTS
} perf_transport_t;

//  Parameters of one child role, carried on its command line.
typedef struct {
    char role [32];             //  Role name (see s_role_main in perf_main.c)
    char endpoint [256];        //  Where to bind or connect
    size_t size;                //  Message size, bytes
    uint64_t count;             //  Messages or round trips measured
    uint64_t warmup;            //  Round trips before measuring
    size_t capacity;            //  shm ring capacity, bytes
    int hwm;                    //  ZeroMQ send and receive HWM
    int spin_us;                //  Core channel spin, us
    int batch;                  //  Core sender: messages per flush
    int timeout_s;              //  The run's time limit, s
    int settle_ms;              //  ZeroMQ sender: wait after connect
    int memcpy_ms;              //  memcpy: how long to copy
    int zerocopy;               //  1: receiving ZeroMQ sockets call
                                //  shmipc_set_zerocopy before attaching
    int loan;                   //  1: ZeroMQ senders build each message
                                //  with shmipc_msg_init_loan
    //  Only for forked limit roles (never on a command line)
    int fd_a;                   //  eventfd ping
    int fd_b;                   //  eventfd pong
    void *shared;               //  Shared cache lines
} perf_job_t;

//  What one run measured.
typedef struct {
    bool ok;                    //  The run worked and its checks passed
    double rate;                //  THR: messages (or copies) per second
    double median_us;           //  RTT: median round trip, us
    double p99_us;              //  RTT: 99th percentile, us
    double seconds;             //  Wall time of the run, start to reaped
    //  shm-zc and shm-loan only: the receiving sockets' shmipc_sock_stats,
    //  summed (THR: the PULL; RTT: the REQ and the REP)
    uint64_t frames_lent;       //  Frames received in place
    uint64_t msgs_in;           //  Messages received over shm
    //  shm-loan only: the sending sockets' messages, summed (THR: the
    //  PUSH; RTT: the REQ and the REP)
    uint64_t msgs_loaned;       //  Built in the sender's loan pool
    uint64_t msgs_sent;         //  Built at all
} perf_sample_t;

//  Everything the coordinator decided and measured.
typedef struct {
    //  Parameters
    uint64_t sizes [PERF_SIZES_MAX];        //  Message sizes, ascending
    size_t nsizes;                          //  How many
    uint64_t thr_count [PERF_SIZES_MAX];    //  Throughput messages per size
    uint64_t rtt_count [PERF_SIZES_MAX];    //  Round trips per size
    uint64_t rtt_warmup [PERF_SIZES_MAX];   //  Warm-up round trips per size
    int hwm [PERF_SIZES_MAX];               //  ZeroMQ HWM per size
    uint64_t limit_count [PERF_TRANSPORTS]; //  Round trips of the limits
    uint64_t limit_warmup [PERF_TRANSPORTS];    //  And their warm-up
    bool selected [PERF_TRANSPORTS];        //  Measured transports
    int reps;                               //  Repetitions
    size_t capacity;                        //  shm ring capacity, bytes
    int spin_us;                            //  For core+spin
    int batch;                              //  Core sender batch
    int timeout_s;                          //  Per run
    int settle_ms;                          //  ZeroMQ sender settle time
    int memcpy_ms;                          //  Per memcpy run
    bool smoke;                             //  --smoke
    bool fixed_count;                       //  --count given
    //  The machine
    char cpu [128];                         //  CPU model
    char kernel [256];                      //  uname
    long nproc;                             //  Online CPUs
    char load_before [64];                  //  /proc/loadavg at start
    char load_after [64];                   //  And at the end
    char started [32];                      //  When, UTC
    //  Results: [kind][transport][size index][rep]; the cache-line and
    //  eventfd limits use size index 0
    perf_sample_t samples [PERF_KINDS][PERF_TRANSPORTS][PERF_SIZES_MAX][PERF_REPS_MAX];
    bool measured [PERF_KINDS][PERF_TRANSPORTS];    //  Planned at all
    int failures;                           //  Failed runs
    char failed [16][160];                  //  The first few, described
    double seconds;                         //  Wall time of the whole run
} perf_plan_t;

//  One number summarised over the repetitions that worked.
typedef struct {
    int n;                      //  Repetitions that worked
    double median;              //  Median over them
    double min;                 //  Smallest
    double max;                 //  Largest
} perf_stat_t;

//  Which number of a sample to summarise.
typedef enum {
    PERF_RATE,                  //  perf_sample_t.rate
    PERF_MEDIAN,                //  perf_sample_t.median_us
    PERF_P99,                   //  perf_sample_t.p99_us
    PERF_LENT,                  //  frames_lent / msgs_in (shm-zc, shm-loan)
    PERF_LOANED                 //  msgs_loaned / msgs_sent (shm-loan)
} perf_metric_t;

//  --------------------------------------------------------------------------
//  perf_report.c: output

//  Return the transport's short name ("shm", "core+spin", "memcpy"...).
const char *
    perf_transport_name (perf_transport_t transport);

//  Summarise one metric over the repetitions.
perf_stat_t
    perf_summary (const perf_plan_t *plan, perf_kind_t kind,
                  perf_transport_t transport, size_t size_index, perf_metric_t metric);

//  Return what a row is compared with, in words (NULL if nothing), and the
//  ratio in *ratio (0 if it cannot be computed).
const char *
    perf_ratio (const perf_plan_t *plan, perf_kind_t kind, perf_transport_t transport,
                size_t size_index, double *ratio);

//  Print the machine and parameters, then the results, as a table, CSV or
//  JSON, on stdout.
void
    perf_report_table (const perf_plan_t *plan);
void
    perf_report_csv (const perf_plan_t *plan);
void
    perf_report_json (const perf_plan_t *plan);

//  Draw throughput and round trip against size into a PNG with gnuplot.
//  Returns 0, or -1 after saying why (gnuplot missing or failing).
int
    perf_report_plot (const perf_plan_t *plan, const char *path);

//  --------------------------------------------------------------------------
//  perf_util.c: helpers for both sides

//  Return CLOCK_MONOTONIC in nanoseconds.
int64_t
    perf_now_ns (void);

//  Parse a size with an optional K, M or G suffix (binary: 1K = 1024),
//  optionally followed by "B" or "iB". Returns 0 or -1.
int
    perf_parse_size (const char *text, uint64_t *value);

//  Format a byte size as "64 B", "1 KiB", "1.5 MiB" into buffer.
const char *
    perf_format_size (uint64_t size, char *buffer, size_t buffer_size);

//  Write seq into the message: its first 8 bytes (fewer if smaller), and
//  a mark derived from it into the last 8 bytes when size >= 16.
void
    perf_stamp (void *data, size_t size, uint64_t seq);

//  Check a message's stamp. Returns 0, or -1 after saying what is wrong.
int
    perf_check (const void *data, size_t size, size_t expected_size, uint64_t seq);

//  Sort samples (ns) and return the median and 99th percentile in us.
void
    perf_percentiles (uint64_t *samples, size_t count, double *median_us,
                      double *p99_us);

//  Child side: print a protocol line on stdout (READY, RESULT), unbuffered.
void
    perf_say (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Child side: print an error on stderr, prefixed with the role.
void
    perf_fail (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Child side: the role name perf_fail prints.
void
    perf_set_role (const char *role);

//  Child side: block until the coordinator releases us (EOF on stdin).
void
    perf_wait_release (void);

//  --------------------------------------------------------------------------
//  Child roles

//  Run the exec'd role named in job; returns the exit status.
int
    perf_zmq_role (const perf_job_t *job);
int
    perf_core_role (const perf_job_t *job);

//  Forked limit roles; each returns the exit status.
int
    perf_memcpy_role (const perf_job_t *job);
int
    perf_cacheline_ping (const perf_job_t *job);
int
    perf_cacheline_pong (const perf_job_t *job);
int
    perf_eventfd_ping (const perf_job_t *job);
int
    perf_eventfd_pong (const perf_job_t *job);

//  --------------------------------------------------------------------------
//  perf_spawn.c: child processes, seen from the coordinator

//  One child process and the pipes to it.
typedef struct {
    pid_t pid;                  //  0 when none
    int in_fd;                  //  Write end of its stdin (-1: closed)
    int out_fd;                 //  Read end of its stdout (-1: closed)
    char buffer [PERF_LINE_MAX];    //  Partial line read
    size_t buffered;            //  Bytes in buffer
    char ready [PERF_LINE_MAX]; //  Its READY line's argument
    char result [PERF_LINE_MAX];    //  Its RESULT line's arguments
    bool got_ready;             //  READY seen
    bool got_result;            //  RESULT seen
    bool eof;                   //  Its stdout closed
    const char *label;          //  For messages
} perf_child_t;

//  A limit role run in a forked child.
typedef int (perf_role_fn) (const perf_job_t *job);

//  Remember our own executable, for exec. Returns 0 or -1.
int
    perf_spawn_init (void);

//  Start a child running job's role in a fresh exec of ourselves, or
//  (fn not NULL) in a plain fork running fn (job). Returns 0 or -1.
int
    perf_spawn (perf_child_t *child, const perf_job_t *job, perf_role_fn *fn);

//  Read from children until each one in [0, count) with want_ready has
//  said READY and, if want_result, each has said RESULT; or until
//  deadline_ns (a perf_now_ns time). Returns 0, or -1 after reporting.
int
    perf_spawn_wait (perf_child_t *children, size_t count, bool want_ready,
                     bool want_result, int64_t deadline_ns);

//  Release the children (close their stdin) and reap them, waiting until
//  deadline_ns, then killing. kill_first: kill at once (after a failure).
//  Returns 0 if every child exited with status 0, else -1.
int
    perf_spawn_finish (perf_child_t *children, size_t count, bool kill_first,
                       int64_t deadline_ns);

//  Files to remove if we are interrupted (the run's socket files).
void
    perf_spawn_set_cleanup (const char *path1, const char *path2);

//  Install SIGINT/SIGTERM handlers that kill the children and clean up.
void
    perf_spawn_signals (void);

//  Read "key=value" from a RESULT line. Returns 0 or -1.
int
    perf_result_u64 (const char *result, const char *key, uint64_t *value);

#endif
