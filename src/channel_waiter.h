/*  =========================================================================
    channel_waiter.h - the channel's one place that sleeps, arms and
    wakes, for both directions: the sleep flags in the control blocks, the
    wake-up protocol, spinning, and the one wait loop (wait_until)

    Owns: our two sleep flags (rx_sleep, tx_sleep in our control block) and
    the record of which peer epochs we have woken. Does not own the control
    blocks (channel.c maps them at the handshake; head and tail in them are
    the rings'), nor the socket (channel_link: it carries the WAKEs and the
    sleep). Knows nothing of rings or messages: what a wait waits for comes
    in as a check function.

    Wake-up protocol (Dekker style, seq_cst fences on both sides):
        sleeper: flag := odd epoch; fence; re-check ring; sleep on socket
        waker:   publish index; fence; if peer flag odd and not yet woken
                 for that epoch: write one byte into the peer's wake pipe
                 (or, if it sent none, one WAKE record on the socket)
    So a wake-up crosses at most once per sleep, never per message.
    Only two places read the socket while data flows: the start of a wait
    that finds its flag armed (not for a non-blocking call of an
    events-driven caller, which calls events before it sleeps), and
    shmipc_channel_events. After arming,
    nothing reads it but the sleep itself, so no WAKE is swallowed between
    the last look at the ring and the sleep.
    =========================================================================
*/

#ifndef SHMIPC_CHANNEL_WAITER_H_INCLUDED
#define SHMIPC_CHANNEL_WAITER_H_INCLUDED

#include "channel_link.h"
#include "shmipc_ring.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>

//  The words each side publishes, in its own segment, one cache line each
//  so that the two writers never share a line.
typedef struct {
    _Alignas (64) uint64_t head;        //  Write index of our ring
    _Alignas (64) uint64_t tail;        //  Read index into the peer's ring
    _Alignas (64) uint32_t rx_sleep;    //  Odd while we wait for data
    _Alignas (64) uint32_t tx_sleep;    //  Odd while we wait for space
    uint32_t tx_need;                   //  And the free bytes we wait for
                                        //  then (0: any): the reader gives
                                        //  space back in steps this big
    _Alignas (64) shmipc_holds_table_t holds;   //  Records of the peer's
                                        //  ring we hold (holds.c); its
                                        //  writer steps over them
} shmipc__control_t;

//  Which side of a channel waits, or which of the peer's sides we wake.
typedef enum {
    SHMIPC__DIR_RX = 0,         //  Receive: waits for data (rx_sleep)
    SHMIPC__DIR_TX = 1          //  Transmit: waits for space (tx_sleep)
} shmipc__dir_t;

typedef struct {
    shmipc__channel_link_t *link;           //  Socket we sleep on and send
                                            //  WAKEs through; not owned
    shmipc__control_t *own_ctl;             //  Control block in our segment;
                                            //  set at the handshake
    const shmipc__control_t *peer_ctl;      //  Control block in the peer's
                                            //  (untrusted); likewise
    uint32_t epoch [2];                     //  Our rx_sleep, tx_sleep values
                                            //  (by shmipc__dir_t)
    uint32_t woke [2];                      //  Peer rx_sleep, tx_sleep epoch
                                            //  last woken
    int spin_us;                            //  Spin before sleeping, us
    bool events_driven;                     //  The caller calls events before
                                            //  every sleep: non-blocking calls
                                            //  leave the socket to it
} shmipc__channel_waiter_t;

//  What a wait waits for. check returns 1 (done), 0 (not yet) or -1
//  (failed, errno set); prepare, if given, runs once, the first time check
//  says not yet, before the deadline is set.
typedef int (shmipc__check_fn) (void *arg);
typedef void (shmipc__prepare_fn) (void *arg);

//  The sleep flag for dir in a control block.
#define SHMIPC__SLEEP_FLAG(ctl, dir) \
    ((dir) == SHMIPC__DIR_RX ? &(ctl)->rx_sleep : &(ctl)->tx_sleep)

//  Set up a waiter on link, with no control blocks yet.
void
    shmipc__channel_waiter_init (shmipc__channel_waiter_t *self,
                                 shmipc__channel_link_t *link);

//  Set our flag for dir to a new odd epoch (then a full fence), unless it
//  is already armed.
void
    shmipc__channel_waiter_arm (shmipc__channel_waiter_t *self, shmipc__dir_t dir);

//  Leave the armed state at the start of an operation: clear the flag and
//  read the socket. Returns 0 or -1 (broken).
int
    shmipc__channel_waiter_wake_up (shmipc__channel_waiter_t *self, shmipc__dir_t dir);

//  Send a WAKE to the peer's side dir if its flag asks for one we have not
//  yet sent for that epoch. Call after publishing (DIR_RX: the reader) or
//  releasing (DIR_TX: the writer).
void
    shmipc__channel_waiter_wake_peer (shmipc__channel_waiter_t *self, shmipc__dir_t dir);

//  Return true if our flag for dir is armed.
static inline bool
shmipc__channel_waiter_armed (shmipc__channel_waiter_t *self, shmipc__dir_t dir)
{
    return (self->epoch [dir] & 1) != 0;
}

//  Set our flag for dir back to even, if it was armed. Does not read the
//  socket: a WAKE left there only costs one spurious wake-up.
static inline void
shmipc__channel_waiter_disarm (shmipc__channel_waiter_t *self, shmipc__dir_t dir)
{
    if (!(self->epoch [dir] & 1))
        return;
    self->epoch [dir]++;
    atomic_store_explicit ((_Atomic uint32_t *) SHMIPC__SLEEP_FLAG (self->own_ctl, dir),
                           self->epoch [dir], memory_order_relaxed);
}

//  Say how many free bytes our writer waits for (before arming DIR_TX).
static inline void
shmipc__channel_waiter_set_need (shmipc__channel_waiter_t *self, uint64_t need)
{
    atomic_store_explicit ((_Atomic uint32_t *) &self->own_ctl->tx_need,
                           (uint32_t) (need > UINT32_MAX ? UINT32_MAX : need),
                           memory_order_relaxed);
}

//  Return the free bytes the peer's writer waits for (0: any). Untrusted:
//  only decides when we give space back, never how much we read.
static inline uint64_t
shmipc__channel_waiter_peer_need (shmipc__channel_waiter_t *self)
{
    return atomic_load_explicit ((_Atomic uint32_t *) &self->peer_ctl->tx_need,
                                 memory_order_relaxed);
}

//  Return true if the peer's flag for dir says it sleeps. A hint, unfenced:
//  wake_peer does the fenced check.
static inline bool
shmipc__channel_waiter_peer_sleeps (shmipc__channel_waiter_t *self, shmipc__dir_t dir)
{
    //  Trusts: nothing; the flag only decides whether we do work early
    return (atomic_load_explicit ((_Atomic uint32_t *) SHMIPC__SLEEP_FLAG (self->peer_ctl, dir),
                                  memory_order_relaxed) & 1) != 0;
}

//  Wait, for side dir, until check (arg) says done: look; on the first
//  miss prepare (arg) and work out the deadline (timeout_ms, -1 for ever);
//  spin (spin_us, unless SHMIPC_DONTWAIT); arm and look once more; then
//  sleep on the socket and look again. Returns 0 (done, flag clear), or -1
//  with check's errno, EAGAIN (SHMIPC_DONTWAIT or timed out), EINTR, or the
//  error that broke the channel. Inline so that check and prepare, known
//  to each caller, are direct calls.
static inline int
shmipc__channel_waiter_wait_until (shmipc__channel_waiter_t *self, shmipc__dir_t dir,
                                   shmipc__check_fn *check, shmipc__prepare_fn *prepare,
                                   void *arg, int timeout_ms, int flags)
{
    bool dontwait = (flags & SHMIPC_DONTWAIT) != 0;
    if (shmipc__channel_waiter_armed (self, dir)) {
        //  A caller that calls events before it sleeps has the socket read
        //  there: a non-blocking call then only leaves the armed state
        if (dontwait && self->events_driven)
            shmipc__channel_waiter_disarm (self, dir);
        else
        if (shmipc__channel_waiter_wake_up (self, dir))
            return -1;
    }
    bool first = true;
    int64_t deadline = -1;
    int64_t spin_until = 0;
    while (true) {
        int rc = check (arg);
        if (rc > 0) {
            shmipc__channel_waiter_disarm (self, dir);
            return 0;
        }
        if (rc < 0)
            return -1;
        if (first) {
            //  We must wait: now, and only now, work out how
            first = false;
            if (prepare)
                prepare (arg);
            deadline = shmipc__deadline (timeout_ms);
            if (self->spin_us > 0 && !dontwait)
                spin_until = shmipc__now_us () + self->spin_us;
            continue;
        }
        if (!shmipc__channel_waiter_armed (self, dir)) {
            if (spin_until && shmipc__now_us () < spin_until) {
                //  Give the CPU away: the peer we wait for may be queued
                //  behind us on this very CPU
                sched_yield ();
                continue;
            }
            //  Say we sleep, then look once more: the other side checks
            //  our flag after it publishes or releases, so one of us sees
            //  the other
            shmipc__channel_waiter_arm (self, dir);
            continue;
        }
        if (dontwait) {
            errno = EAGAIN;
            return -1;
        }
        if (shmipc__channel_link_sleep (self->link, deadline))
            return -1;
        shmipc__channel_waiter_disarm (self, dir);
    }
}

#endif
