/*  =========================================================================
    preload - libshmipc-preload.so: shm:// endpoints in programs that
    cannot be changed, loaded by the launcher (shmipc-run) with LD_PRELOAD

    Owns nothing: it defines libzmq's names (interposed.h) as libshmipc's
    shmipc_zmq_* calls. It must define all of them itself, not only the
    endpoint calls: a preloaded library comes first in the search order,
    but the libraries it needs (libshmipc) come after the program's own
    (libzmq), so libshmipc's definitions would be too late. It works with
    libzmq loaded at start (C, C++, czmq) or later by dlopen (Python):
    libshmipc finds libzmq's own functions in libzmq itself (real.c).
    =========================================================================
*/

#include "shmipc.h"
#include "interposed.h"

SHMIPC__INTERPOSED_ALWAYS (SHMIPC__INTERPOSE)
SHMIPC__INTERPOSED_ENDPOINTS (SHMIPC__INTERPOSE)

//  Tells libshmipc, as it loads, that it runs under the launcher: then it
//  leaves the program's environment as it found it (registry.c)
SHMIPC_EXPORT const int shmipc__preloaded = 1;
