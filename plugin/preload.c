/*  =========================================================================
    preload - libshmipc-preload.so: shm:// endpoints in programs that
    cannot be changed, loaded by the launcher (shmipc-run) with LD_PRELOAD

    Owns: the handle of libshmipc, which it loads itself, beside itself,
    with RTLD_LOCAL, at the first call of a name it defines, and the table
    of libshmipc's functions. It links neither libshmipc nor libzmq: so the
    system libzmq never enters the program's global scope, and a program
    that carries its own copy of libzmq (a pip wheel of pyzmq) keeps every
    call of that copy. It defines libzmq's names (interposed.h) in front of
    libzmq's, each as libshmipc's shmipc_zmq_* call; a caller linked with
    a libzmq other than the system one gets its own function instead
    (callers.c). All of them here, not only the endpoint calls: a preloaded
    library comes before the program's libzmq in the search order, which
    libshmipc's own definitions do not.
    =========================================================================
*/

#include "shmipc_common.h"
#include "interposed.h"
#include "real.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

//  Tells libshmipc, as it loads, that it runs under the launcher: then it
//  leaves the program's environment as it found it (registry.c)
SHMIPC_EXPORT const int shmipc__preloaded = 1;

//  libshmipc's functions: one per name we define, and the caller check.
#define S_FIELD(type, name, ours, field, fail, parameters, arguments)       \
    type (*name) parameters;
static struct {
    SHMIPC__INTERPOSED_ALWAYS (S_FIELD)
    SHMIPC__INTERPOSED_ENDPOINTS (S_FIELD)
    const shmipc__real_t *(*foreign) (void *caller, void *self);
} s_lib;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

#define S_LOOK_UP(type, name, ours, field, fail, parameters, arguments)     \
    *(void **) &s_lib.name = dlsym (handle, #ours);                         \
    if (!s_lib.name)                                                        \
        complete = false;

//  Load libshmipc from our own directory (else by the usual search), local
//  to itself and its own libraries, and find its functions.
static void
s_load (void)
{
    void *handle = NULL;
    Dl_info self;
    char path [PATH_MAX];
    if (dladdr ((void *) s_load, &self) && self.dli_fname && strrchr (self.dli_fname, '/')) {
        int dir = (int) (strrchr (self.dli_fname, '/') - self.dli_fname);
        if (snprintf (path, sizeof path, "%.*s/%s", dir, self.dli_fname, SHMIPC_LIBRARY_SONAME)
            < (int) sizeof path)
            handle = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!handle)
        handle = dlopen (SHMIPC_LIBRARY_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        fprintf (stderr, "shmipc-run: cannot load %s: %s\n", SHMIPC_LIBRARY_SONAME, dlerror ());
        return;
    }
    bool complete = true;
    SHMIPC__INTERPOSED_ALWAYS (S_LOOK_UP)
    SHMIPC__INTERPOSED_ENDPOINTS (S_LOOK_UP)
    *(void **) &s_lib.foreign = dlsym (handle, "shmipc__callers_foreign");
    if (!complete || !s_lib.foreign) {
        fprintf (stderr, "shmipc-run: %s lacks functions of this launcher\n",
                 SHMIPC_LIBRARY_SONAME);
        memset (&s_lib, 0, sizeof s_lib);
    }
}

//  Define name: libshmipc's function, or the caller's own libzmq's; if
//  libshmipc could not be loaded, the next definition (libzmq's), or a
//  failure with ENOSYS if there is none.
#define S_DEFINE(type, name, ours, field, fail, parameters, arguments)      \
    SHMIPC_EXPORT type name parameters;                                     \
    type name parameters                                                    \
    {                                                                       \
        pthread_once (&s_once, s_load);                                     \
        if (s_lib.foreign) {                                                \
            const shmipc__real_t *foreign =                                 \
                s_lib.foreign (__builtin_return_address (0), (void *) name); \
            if (foreign)                                                    \
                return foreign->field arguments;                            \
            return s_lib.name arguments;                                    \
        }                                                                   \
        type (*next) parameters;                                            \
        *(void **) &next = dlsym (RTLD_NEXT, #name);                        \
        if (next)                                                           \
            return next arguments;                                          \
        errno = ENOSYS;                                                     \
        return fail;                                                        \
    }

SHMIPC__INTERPOSED_ALWAYS (S_DEFINE)
SHMIPC__INTERPOSED_ENDPOINTS (S_DEFINE)
