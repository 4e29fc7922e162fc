/*  =========================================================================
    callers - which libzmq the caller of an interposed name was linked with

    The names libshmipc and its preload library define in front of
    libzmq's are found first by every object in the process, also by one
    that carries its own copy of libzmq (pyzmq from a pip wheel bundles
    one). Such a caller's sockets and contexts are not the system
    libzmq's: its calls must go to its own copy, untouched. Owns: a small
    cache of the objects seen (each with its libzmq, or none for ours).
    =========================================================================
*/

#ifndef SHMIPC_CALLERS_H_INCLUDED
#define SHMIPC_CALLERS_H_INCLUDED

#include "real.h"
#include "shmipc_common.h"

//  Return the functions of the libzmq that the object holding caller (a
//  return address) was linked with, if that is not the system libzmq
//  libshmipc uses; NULL if it is (or cannot be told: then ours serve).
//  self is the interposed function asking, to tell our own definitions
//  from a foreign libzmq's. Exported for the preload library only.
SHMIPC_EXPORT const shmipc__real_t *
    shmipc__callers_foreign (void *caller, void *self);

#endif
