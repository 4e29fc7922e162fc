/*  =========================================================================
    contexts - the socket -> context table (see contexts.h)

    Owns: the table and its entries. Chained hash, grown by doubling, one
    lock; a fork's child starts empty (the parent's sockets are not its).
    =========================================================================
*/

#include "contexts.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

//  One socket's entry.
typedef struct _s_item_t {
    void *socket;                   //  The libzmq socket (the key)
    void *context;                  //  Its context
    struct _s_item_t *next;         //  Next in the bucket
} s_item_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static s_item_t **s_buckets = NULL;     //  The table; a power of two long
static size_t s_size = 0;               //  Its buckets
static size_t s_count = 0;              //  Its entries

//  Bucket of socket in a table of size buckets.
static size_t
s_bucket (void *socket, size_t size)
{
    uintptr_t key = (uintptr_t) socket;
    key ^= key >> 17;                   //  Sockets are malloc'd: low bits
    key *= 0x9e3779b97f4a7c15ULL;       //  say little
    return (size_t) (key >> 20) & (size - 1);
}

//  Double the table (or make it). Caller holds s_lock. Returns 0 or -1.
static int
s_grow (void)
{
    size_t size = s_size ? s_size * 2 : 64;
    s_item_t **buckets = (s_item_t **) calloc (size, sizeof *buckets);
    if (!buckets)
        return -1;
    for (size_t index = 0; index < s_size; index++)
        while (s_buckets [index]) {
            s_item_t *item = s_buckets [index];
            s_buckets [index] = item->next;
            size_t bucket = s_bucket (item->socket, size);
            item->next = buckets [bucket];
            buckets [bucket] = item;
        }
    free (s_buckets);
    s_buckets = buckets;
    s_size = size;
    return 0;
}

//  In a fork's child: start empty.
static void
s_forget (void)
{
    for (size_t index = 0; index < s_size; index++)
        while (s_buckets [index]) {
            s_item_t *item = s_buckets [index];
            s_buckets [index] = item->next;
            free (item);
        }
    free (s_buckets);
    s_buckets = NULL;
    s_size = s_count = 0;
    pthread_mutex_init (&s_lock, NULL);
}

__attribute__ ((constructor)) static void
s_set_up (void)
{
    pthread_atfork (NULL, NULL, s_forget);
}

int
shmipc__contexts_add (void *socket, void *context)
{
    s_item_t *item = (s_item_t *) malloc (sizeof *item);
    if (!item) {
        errno = ENOMEM;
        return -1;
    }
    item->socket = socket;
    item->context = context;
    pthread_mutex_lock (&s_lock);
    if (s_count >= s_size && s_grow () && s_size == 0) {
        pthread_mutex_unlock (&s_lock);
        free (item);
        errno = ENOMEM;
        return -1;
    }
    //  A socket address libzmq reuses replaces what it was
    size_t bucket = s_bucket (socket, s_size);
    for (s_item_t *old = s_buckets [bucket]; old; old = old->next)
        if (old->socket == socket) {
            old->context = context;
            pthread_mutex_unlock (&s_lock);
            free (item);
            return 0;
        }
    item->next = s_buckets [bucket];
    s_buckets [bucket] = item;
    s_count++;
    pthread_mutex_unlock (&s_lock);
    return 0;
}

void
shmipc__contexts_remove (void *socket)
{
    s_item_t *found = NULL;
    pthread_mutex_lock (&s_lock);
    if (s_size)
        for (s_item_t **link = &s_buckets [s_bucket (socket, s_size)]; *link;
             link = &(*link)->next)
            if ((*link)->socket == socket) {
                found = *link;
                *link = found->next;
                s_count--;
                break;
            }
    pthread_mutex_unlock (&s_lock);
    free (found);
}

void *
shmipc__contexts_find (void *socket)
{
    void *context = NULL;
    pthread_mutex_lock (&s_lock);
    if (s_size)
        for (s_item_t *item = s_buckets [s_bucket (socket, s_size)]; item; item = item->next)
            if (item->socket == socket) {
                context = item->context;
                break;
            }
    pthread_mutex_unlock (&s_lock);
    return context;
}
