/*  =========================================================================
    loan - frames whose data lives in the socket's shared-memory loan pool
    (shmipc_frame_new, shmipc_msg_init_loan): the public API

    Owns nothing of its own: the pool is the socket's registry entry's
    (made here at the first loan, and handed to its actor with LOANS), the
    blocks are ZeroMQ's messages' until their free callback runs. The
    actor's channels send such frames as offsets (channel_lend.c).
    =========================================================================
*/

#include "registry.h"
#include "real.h"

//  Below this a loan costs more than the copy it saves: an ordinary frame.
#define S_LOAN_MIN      4096

//  The pool: four rings' worth, at least 4 MiB.
#define S_POOL_BYTES(capacity) \
    ((capacity) * 4 > (4UL << 20) ? (capacity) * 4 : (4UL << 20))

//  ZeroMQ frees a loaned frame: its block goes back when no channel still
//  lends it.
static void
s_loan_free (void *data, void *hint)
{
    shmipc_loans_unref ((shmipc_loans_t *) hint, data);
}

//  Return the socket's pool, making it and telling the actor at the first
//  loan; NULL (with errno) if there is none to be had.
static shmipc_loans_t *
s_pool (shmipc__entry_t *entry)
{
    if (entry->loans)
        return entry->loans;
    //  Not before the first shm:// bind or connect: a socket that never
    //  has one would hold a pool for nothing
    if (!entry->bound) {
        errno = ENOTCONN;
        return NULL;
    }
    size_t size = entry->loan_pool ? entry->loan_pool : S_POOL_BYTES (entry->capacity);
    if (size > SHMIPC_LOANS_MAX)
        size = SHMIPC_LOANS_MAX;
    shmipc_loans_t *loans = shmipc_loans_new ("loans", size);
    if (!loans)
        return NULL;
    SHMIPC__HANDED_OVER (loans);
    SHMIPC__SEND (entry->actor, "sp", "LOANS", (void *) loans);
    if (shmipc__actor_wait (entry->actor)) {
        shmipc_loans_release (&loans);
        return NULL;
    }
    entry->loans = loans;
    return loans;
}

//  Initialise msg with a block of the socket's pool. Returns the socket's
//  entry, or NULL if no block can be had (errno set; msg untouched). A
//  socket without an entry has had no shm:// endpoint: no pool for it.
static shmipc__entry_t *
s_init_loan (zmq_msg_t *msg, void *self, size_t size)
{
    if (size < S_LOAN_MIN) {
        errno = EMSGSIZE;
        return NULL;
    }
    shmipc__entry_t *entry = shmipc__registry_find (zsock_resolve (self));
    shmipc_loans_t *loans = entry ? s_pool (entry) : NULL;
    void *data = loans ? shmipc_loans_take (loans, size) : NULL;
    if (!data)
        return NULL;
    if (zmq_msg_init_data (msg, data, size, s_loan_free, loans)) {
        shmipc_loans_unref (loans, data);
        return NULL;
    }
    return entry;
}

int
shmipc_msg_init_loan (zmq_msg_t *msg, void *self, size_t size)
{
    assert (msg);
    assert (self);
    if (s_init_loan (msg, self, size))
        return 0;
    //  No loan: an ordinary message, copied later, never a failure
    return zmq_msg_init_size (msg, size);
}

//  Turn a loaned message into a frame: czmq (without its draft API) makes
//  frames only from bytes it copies, or from a message it receives, so
//  the message makes one trip through an inproc pair of the socket's.
static zframe_t *
s_frame_from (shmipc__entry_t *entry, zmq_msg_t *msg)
{
    if (!entry->loop [0]) {
        //  In the socket's own context: ending that context ends the entry,
        //  and with it the pair, first
        void *context = entry->context;
        char endpoint [64];
        snprintf (endpoint, sizeof endpoint, "inproc://shmipc-loan-%p", (void *) entry);
        entry->loop [0] = context ? shmipc__real ()->socket (context, ZMQ_PAIR) : NULL;
        entry->loop [1] = context ? shmipc__real ()->socket (context, ZMQ_PAIR) : NULL;
        if (!entry->loop [0] || !entry->loop [1]
        ||  shmipc__real ()->bind (entry->loop [1], endpoint)
        ||  shmipc__real ()->connect (entry->loop [0], endpoint)) {
            for (int index = 0; index < 2; index++)
                if (entry->loop [index])
                    shmipc__real ()->close (entry->loop [index]);
            entry->loop [0] = entry->loop [1] = NULL;
            return NULL;
        }
        int linger = 0;
        for (int index = 0; index < 2; index++)
            zmq_setsockopt (entry->loop [index], ZMQ_LINGER, &linger, sizeof linger);
    }
    if (zmq_msg_send (msg, entry->loop [0], ZMQ_DONTWAIT) == -1)
        return NULL;
    //  It is there: only a signal can interrupt the receive, and the
    //  message must not be left in the pair for the next loan to find
    while (true) {
        zframe_t *frame = zframe_recv (entry->loop [1]);
        if (frame || zmq_errno () != EINTR)
            return frame;
    }
}

int
shmipc_set_loan_pool (void *self, size_t size)
{
    assert (self);
    if (size < SHMIPC_LOANS_UNIT || size > SHMIPC_LOANS_MAX) {
        errno = EINVAL;
        return -1;
    }
    shmipc__entry_t *entry = shmipc__registry_require (zsock_resolve (self), false);
    if (!entry)
        return -1;
    if (entry->loans) {
        errno = EBUSY;          //  The pool exists: its size is set
        return -1;
    }
    entry->loan_pool = size;
    return 0;
}

zframe_t *
shmipc_frame_new (void *self, size_t size)
{
    assert (self);
    zmq_msg_t msg;
    shmipc__entry_t *entry = s_init_loan (&msg, self, size);
    if (entry) {
        zframe_t *frame = s_frame_from (entry, &msg);
        zmq_msg_close (&msg);           //  Emptied by the send, if it went
        if (frame)
            return frame;
    }
    return zframe_new (NULL, size);
}
