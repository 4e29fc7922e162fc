/*  =========================================================================
    callers - the foreign-libzmq check (see callers.h)

    Owns: the cache of objects seen, and the tables of foreign libzmqs'
    functions (kept for the life of the process, as are the handles that
    pin those objects). Lookups take no lock: an entry is written once,
    before the count that publishes it.
    =========================================================================
*/

#include "callers.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#define S_CACHE_MAX 512             //  Objects remembered; more are
                                    //  worked out at each call

//  One object that called an interposed name.
typedef struct {
    void *start;                    //  Its mapping, from
    void *end;                      //  to
    const shmipc__real_t *libzmq;   //  Its foreign libzmq, or NULL (ours)
} s_caller_t;

static s_caller_t s_cache [S_CACHE_MAX];
static atomic_size_t s_count;           //  Entries published
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

//  True if function lives in the same object as other.
static bool
s_same_object (void *function, void *other)
{
    struct dl_find_object one, two;
    return _dl_find_object (function, &one) == 0 && _dl_find_object (other, &two) == 0
        && one.dlfo_map_start == two.dlfo_map_start;
}

//  The foreign libzmqs met so far, one table each (a handful at most).
typedef struct _s_libzmq_t {
    shmipc__real_t functions;       //  Its functions
    struct _s_libzmq_t *next;       //  The next one
} s_libzmq_t;
static s_libzmq_t *s_libzmqs = NULL;

//  Work out the foreign libzmq of the object found, or NULL. Caller holds
//  s_lock. The object stays loaded for as long as we remember it (its
//  handle is kept): an address range in the cache never changes owner.
static const shmipc__real_t *
s_resolve (struct dl_find_object *found, void *self)
{
    const char *name = found->dlfo_link_map ? found->dlfo_link_map->l_name : NULL;
    void *handle = dlopen (name && *name ? name : NULL, RTLD_LAZY | RTLD_NOLOAD);
    void *socket = handle ? dlsym (handle, "zmq_socket") : NULL;
    //  Ours: the system libzmq, our own definitions (libshmipc's or the
    //  preload library's), or nothing to tell
    const shmipc__real_t *real = shmipc__real ();
    if (!socket || socket == (void *) real->socket
    ||  s_same_object (socket, self) || s_same_object (socket, (void *) s_resolve))
        return NULL;
    for (s_libzmq_t *known = s_libzmqs; known; known = known->next)
        if ((void *) known->functions.socket == socket)
            return &known->functions;
    s_libzmq_t *table = (s_libzmq_t *) calloc (1, sizeof *table);
    if (!table)
        return NULL;
    bool missing = shmipc__real_fill (&table->functions, handle) > 0;
    if (missing) {
        //  Not a libzmq we can stand in front of: leave it to ours
        free (table);
        return NULL;
    }
    table->next = s_libzmqs;
    s_libzmqs = table;
    return &table->functions;
}

const shmipc__real_t *
shmipc__callers_foreign (void *caller, void *self)
{
    size_t count = atomic_load_explicit (&s_count, memory_order_acquire);
    for (size_t index = 0; index < count; index++)
        if (caller >= s_cache [index].start && caller < s_cache [index].end)
            return s_cache [index].libzmq;
    struct dl_find_object found;
    if (_dl_find_object (caller, &found))
        return NULL;
    pthread_mutex_lock (&s_lock);
    //  Another thread may have added it meanwhile
    count = atomic_load_explicit (&s_count, memory_order_relaxed);
    for (size_t index = 0; index < count; index++)
        if (s_cache [index].start == found.dlfo_map_start) {
            pthread_mutex_unlock (&s_lock);
            return s_cache [index].libzmq;
        }
    const shmipc__real_t *libzmq = s_resolve (&found, self);
    if (count < S_CACHE_MAX) {
        s_cache [count] = (s_caller_t) { found.dlfo_map_start, found.dlfo_map_end, libzmq };
        atomic_store_explicit (&s_count, count + 1, memory_order_release);
    }
    pthread_mutex_unlock (&s_lock);
    return libzmq;
}
