/*  =========================================================================
    shmipc - shared-memory transport for ZeroMQ programs

    The umbrella header. The core (no ZeroMQ) is in the shmipc_*.h headers
    it includes; the czmq layer's API is declared here.
    =========================================================================
*/

#ifndef SHMIPC_H_INCLUDED
#define SHMIPC_H_INCLUDED

#include "shmipc_common.h"
#include "shmipc_fdpass.h"
#include "shmipc_segment.h"
#include "shmipc_ring.h"
#include "shmipc_msg.h"
#include "shmipc_channel.h"
#include "shmipc_endpoint.h"

#endif
