/*  =========================================================================
    shmipc_common - flags, limits and logging shared by every core class

    Owns: the process-wide verbose switch. Nothing here touches ZeroMQ.
    =========================================================================
*/

#ifndef SHMIPC_COMMON_H_INCLUDED
#define SHMIPC_COMMON_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SHMIPC_BUILDING) && defined(__GNUC__)
#   define SHMIPC_EXPORT __attribute__ ((visibility ("default")))
#else
#   define SHMIPC_EXPORT
#endif

#define SHMIPC_VERSION_MAJOR 0
#define SHMIPC_VERSION_MINOR 1
#define SHMIPC_VERSION_PATCH 0

//  Flags for send and receive calls.
#define SHMIPC_DONTWAIT   1     //  Fail with EAGAIN instead of waiting
#define SHMIPC_DEFER      2     //  Write, but publish at the next flush

//  Ring capacity limits, in bytes (capacities are rounded up to a power of two).
#define SHMIPC_RING_MIN   64
#define SHMIPC_RING_MAX   (1UL << 30)

//  Largest control message and how many may be unacknowledged at once.
#define SHMIPC_CTRL_MAX    4096
#define SHMIPC_CTRL_WINDOW 8

//  Most frames one message may carry (a bound on what a peer can make us hold).
#define SHMIPC_FRAMES_MAX  (1U << 20)

//  Longest channel name carried in the handshake.
#define SHMIPC_NAME_MAX    255

//  Switch diagnostic messages on stderr on or off (also: SHMIPC_VERBOSE=1 in
//  the environment). They name the reason a connection was closed.
SHMIPC_EXPORT void
    shmipc_set_verbose (bool verbose);

//  Return true if diagnostics are on.
SHMIPC_EXPORT bool
    shmipc_verbose (void);

#ifdef __cplusplus
}
#endif

#endif
