/*  =========================================================================
    pool - reusable buffers for large frames handed to ZeroMQ

    Owns the idle buffers and, through a count of buffers out, itself once
    the owner has let go.
    =========================================================================
*/

#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

//  Buffers are sized in steps of this, so one serves messages of nearby
//  sizes.
#define S_STEP  65536

//  What precedes each buffer's data.
typedef struct _s_block_t {
    size_t capacity;                //  Data bytes
    struct _s_block_t *next;        //  Next idle block
    max_align_t align [];           //  Data follows, aligned
} s_block_t;

struct _shmipc__pool_t {
    pthread_mutex_t lock;           //  Guards everything below
    s_block_t *idle;                //  Idle blocks
    size_t idle_bytes;              //  Their capacity
    size_t max_bytes;               //  Most idle capacity kept
    size_t out;                     //  Blocks given to ZeroMQ
    bool released;                  //  The owner let go
};

shmipc__pool_t *
shmipc__pool_new (size_t max_bytes)
{
    shmipc__pool_t *self = (shmipc__pool_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init (&self->lock, NULL);
    self->max_bytes = max_bytes;
    return self;
}

//  Free the idle blocks. Caller holds the lock.
static void
s_free_idle (shmipc__pool_t *self)
{
    while (self->idle) {
        s_block_t *block = self->idle;
        self->idle = block->next;
        free (block);
    }
    self->idle_bytes = 0;
}

//  Free the pool if the owner let go and no buffer is out. Caller holds
//  the lock, which this releases.
static void
s_unlock_or_die (shmipc__pool_t *self)
{
    bool dead = self->released && self->out == 0;
    pthread_mutex_unlock (&self->lock);
    if (dead) {
        pthread_mutex_destroy (&self->lock);
        free (self);
    }
}

void
shmipc__pool_release (shmipc__pool_t **self_p)
{
    if (*self_p) {
        shmipc__pool_t *self = *self_p;
        pthread_mutex_lock (&self->lock);
        self->released = true;
        s_free_idle (self);
        s_unlock_or_die (self);
        *self_p = NULL;
    }
}

//  zmq_free_fn: a buffer comes back from ZeroMQ, from any thread.
static void
s_give_back (void *data, void *hint)
{
    s_block_t *block = (s_block_t *) ((uint8_t *) data - offsetof (s_block_t, align));
    shmipc__pool_t *self = (shmipc__pool_t *) hint;
    pthread_mutex_lock (&self->lock);
    self->out--;
    if (!self->released && self->idle_bytes + block->capacity <= self->max_bytes) {
        block->next = self->idle;
        self->idle = block;
        self->idle_bytes += block->capacity;
    }
    else
        free (block);
    s_unlock_or_die (self);
}

int
shmipc__pool_frame (shmipc__pool_t *self, zmq_msg_t *frame, size_t size)
{
    size_t capacity = (size + S_STEP - 1) / S_STEP * S_STEP;
    pthread_mutex_lock (&self->lock);
    //  A block of exactly this step, so none wastes more than a step
    s_block_t *block = NULL;
    for (s_block_t **link = &self->idle; *link; link = &(*link)->next)
        if ((*link)->capacity == capacity) {
            block = *link;
            *link = block->next;
            self->idle_bytes -= block->capacity;
            break;
        }
    self->out++;
    pthread_mutex_unlock (&self->lock);
    if (!block) {
        block = (s_block_t *) malloc (sizeof (s_block_t) + capacity);
        if (!block)
            goto failed;
        block->capacity = capacity;
    }
    if (zmq_msg_init_data (frame, block->align, size, s_give_back, self) == 0)
        return 0;
    free (block);
failed:
    pthread_mutex_lock (&self->lock);
    self->out--;
    pthread_mutex_unlock (&self->lock);
    errno = ENOMEM;
    return -1;
}
