/*  =========================================================================
    endpoint.h - what the core and the plugin share about endpoints beyond
    the public shmipc_endpoint.h: turning an endpoint string into a socket
    address (kept out of the installed API, with its <sys/un.h>)

    Owns nothing.
    =========================================================================
*/

#ifndef SHMIPC_ENDPOINT_INTERNAL_H_INCLUDED
#define SHMIPC_ENDPOINT_INTERNAL_H_INCLUDED

#include "shmipc_endpoint.h"
#include "util.h"

#include <sys/socket.h>
#include <sys/un.h>

//  Parse endpoint into a socket address. Trusts nothing: rejects a missing
//  scheme, an empty, relative or over-long path, an empty or over-long
//  abstract name, and embedded control characters. Returns 0 or -1/EINVAL.
int
    shmipc__endpoint_parse (const char *endpoint, struct sockaddr_un *addr,
                            socklen_t *addr_len);

#endif
