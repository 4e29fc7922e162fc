/*  =========================================================================
    channel_waiter - arming and clearing our sleep flags, and waking the
    peer's: the wake-up protocol (see channel_waiter.h), in one file

    Owns our two sleep flags and the epochs we have woken. The wait loop
    itself is inline in channel_waiter.h. Trusts nothing it loads from the
    peer's control block: a flag only decides whether a WAKE is sent.
    =========================================================================
*/

#include "channel_waiter.h"

void
shmipc__channel_waiter_init (shmipc__channel_waiter_t *self, shmipc__channel_link_t *link)
{
    *self = (shmipc__channel_waiter_t) { .link = link };
}

void
shmipc__channel_waiter_arm (shmipc__channel_waiter_t *self, shmipc__dir_t dir)
{
    if (self->epoch [dir] & 1)
        return;
    self->epoch [dir]++;
    atomic_store_explicit ((_Atomic uint32_t *) SHMIPC__SLEEP_FLAG (self->own_ctl, dir),
                           self->epoch [dir], memory_order_relaxed);
    //  From now on the peer may write into our wake pipe
    self->link->wake_maybe = true;
    //  Our flag must be visible before we look at the ring again
    atomic_thread_fence (memory_order_seq_cst);
}

int
shmipc__channel_waiter_wake_up (shmipc__channel_waiter_t *self, shmipc__dir_t dir)
{
    shmipc__channel_waiter_disarm (self, dir);
    return shmipc__channel_link_drain_all (self->link);
}

void
shmipc__channel_waiter_wake_peer (shmipc__channel_waiter_t *self, shmipc__dir_t dir)
{
    atomic_thread_fence (memory_order_seq_cst);
    //  Trusts: nothing; the flag only decides whether we send a WAKE
    uint32_t epoch = atomic_load_explicit (
        (_Atomic uint32_t *) SHMIPC__SLEEP_FLAG (self->peer_ctl, dir), memory_order_relaxed);
    if ((epoch & 1) && epoch != self->woke [dir]) {
        self->woke [dir] = epoch;
        //  A full pipe or socket means the peer has unread wake-ups or
        //  records, so it will wake anyway: dropping this one loses nothing
        shmipc__channel_link_send_wake (self->link);
    }
}
