/*  =========================================================================
    real - libzmq's own entry points, found once (see real.h)

    Owns: the table, filled at the first call (thread-safe, pthread_once).
    =========================================================================
*/

#include "real.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <zmq.h>

static shmipc__real_t s_real;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

//  Stand-ins for a function libzmq lacks: fail, never crash.
static void *s_no_socket (void *context, int type) { errno = ENOSYS; return NULL; }
static int s_no_call (void *object) { errno = ENOSYS; return -1; }
static int s_no_endpoint (void *socket, const char *endpoint) { errno = ENOSYS; return -1; }
static int
s_no_getsockopt (void *socket, int option, void *value, size_t *size)
{
    errno = ENOSYS;
    return -1;
}

//  Look name up in libzmq, or take the stand-in.
#define S_FIND(field, name, fallback)                                       \
    do {                                                                    \
        void *found = library ? dlsym (library, name) : NULL;               \
        *(void **) &s_real.field = found ? found : (void *) (fallback);     \
    } while (0)

static void
s_fill (void)
{
    //  The library where zmq_version lives (no one stands in front of it)
    //  is libzmq: the handle from dlopen of that very file searches it,
    //  whatever the global search order is. RTLD_NOLOAD: it is loaded
    //  already (libshmipc needs it), and a reference is all we take.
    //  First by its soname (libzmq 4's ABI is .so.5), then by where
    //  zmq_version is, for a libzmq of another name
    void *library = dlopen ("libzmq.so.5", RTLD_LAZY | RTLD_NOLOAD);
    Dl_info info, ours;
    if (!library && dladdr ((void *) zmq_version, &info) && info.dli_fname
    &&  dladdr ((void *) s_fill, &ours) && info.dli_fbase != ours.dli_fbase)
        library = dlopen (info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    S_FIND (socket, "zmq_socket", s_no_socket);
    S_FIND (close, "zmq_close", s_no_call);
    S_FIND (bind, "zmq_bind", s_no_endpoint);
    S_FIND (connect, "zmq_connect", s_no_endpoint);
    S_FIND (unbind, "zmq_unbind", s_no_endpoint);
    S_FIND (disconnect, "zmq_disconnect", s_no_endpoint);
    S_FIND (getsockopt, "zmq_getsockopt", s_no_getsockopt);
    S_FIND (ctx_term, "zmq_ctx_term", s_no_call);
    S_FIND (ctx_shutdown, "zmq_ctx_shutdown", s_no_call);
    S_FIND (ctx_destroy, "zmq_ctx_destroy", s_no_call);
    S_FIND (term, "zmq_term", s_no_call);
    //  The handle stays open: libzmq stays for as long as we call into it
}

const shmipc__real_t *
shmipc__real (void)
{
    pthread_once (&s_once, s_fill);
    return &s_real;
}
