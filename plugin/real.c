/*  =========================================================================
    real - libzmq's own entry points, found once (see real.h)

    Owns: the table, filled at the first call (thread-safe, pthread_once).
    =========================================================================
*/

#include "real.h"
#include "interposed.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <zmq.h>

static shmipc__real_t s_real;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

//  Stand-ins for a function a libzmq lacks: fail with ENOSYS, never crash.
#define S_STAND_IN(type, name, ours, field, fail, parameters, arguments)    \
    static type s_no_##name parameters { errno = ENOSYS; return fail; }
SHMIPC__INTERPOSED_ALWAYS (S_STAND_IN)
SHMIPC__INTERPOSED_ENDPOINTS (S_STAND_IN)

//  Look name up through handle into the table, or take its stand-in.
#define S_LOOK_UP(type, name, ours, field, fail, parameters, arguments)     \
    *(void **) &table->field = handle ? dlsym (handle, #name) : NULL;       \
    if (!table->field) {                                                    \
        table->field = s_no_##name;                                         \
        missing++;                                                          \
    }

int
shmipc__real_fill (shmipc__real_t *table, void *handle)
{
    int missing = 0;
    SHMIPC__INTERPOSED_ALWAYS (S_LOOK_UP)
    SHMIPC__INTERPOSED_ENDPOINTS (S_LOOK_UP)
    return missing;
}

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
    shmipc__real_fill (&s_real, library);
    //  The handle stays open: libzmq stays for as long as we call into it
}

const shmipc__real_t *
shmipc__real (void)
{
    pthread_once (&s_once, s_fill);
    return &s_real;
}

int
shmipc__int_option (void *socket, int option)
{
    int value = 0;
    size_t size = sizeof value;
    if (shmipc__real ()->getsockopt (socket, option, &value, &size))
        value = 0;
    return value;
}
