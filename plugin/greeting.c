/*  =========================================================================
    greeting - the ZeroMQ-level greeting between actors, and socket-type
    rules

    Owns nothing. Pure functions; the decoder meets a peer's bytes.
    =========================================================================
*/

#include "greeting.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

#define S_MAGIC     "ZSHM"
#define S_VERSION   1

size_t
shmipc__greeting_encode (uint8_t *buffer, int type,
                         const uint8_t *routing_id, size_t routing_id_size)
{
    if (routing_id_size > 255)
        routing_id_size = 255;
    memcpy (buffer, S_MAGIC, 4);
    buffer [4] = S_VERSION;
    buffer [5] = (uint8_t) type;
    buffer [6] = 0;
    buffer [7] = (uint8_t) routing_id_size;
    if (routing_id_size)
        memcpy (buffer + 8, routing_id, routing_id_size);
    return 8 + routing_id_size;
}

int
shmipc__greeting_decode (const uint8_t *buffer, size_t size,
                         shmipc__greeting_t *greeting)
{
    //  Trusts: nothing; reads only buffer [0..size).
    if (size < 8 || memcmp (buffer, S_MAGIC, 4) != 0 || buffer [4] != S_VERSION
    ||  buffer [6] != 0 || size != 8 + (size_t) buffer [7]
    ||  !shmipc__type_supported (buffer [5])) {
        errno = EPROTO;
        return -1;
    }
    greeting->type = buffer [5];
    greeting->routing_id_size = buffer [7];
    memcpy (greeting->routing_id, buffer + 8, greeting->routing_id_size);
    return 0;
}

bool
shmipc__type_supported (int type)
{
    switch (type) {
        case ZMQ_PAIR: case ZMQ_PUB: case ZMQ_SUB: case ZMQ_REQ: case ZMQ_REP:
        case ZMQ_DEALER: case ZMQ_ROUTER: case ZMQ_PULL: case ZMQ_PUSH:
        case ZMQ_XPUB: case ZMQ_XSUB:
            return true;
        default:
            return false;
    }
}

bool
shmipc__types_compatible (int mine, int theirs)
{
    switch (mine) {
        case ZMQ_PAIR:
            return theirs == ZMQ_PAIR;
        case ZMQ_PUB: case ZMQ_XPUB:
            return theirs == ZMQ_SUB || theirs == ZMQ_XSUB;
        case ZMQ_SUB: case ZMQ_XSUB:
            return theirs == ZMQ_PUB || theirs == ZMQ_XPUB;
        case ZMQ_REQ:
            return theirs == ZMQ_REP || theirs == ZMQ_ROUTER;
        case ZMQ_REP:
            return theirs == ZMQ_REQ || theirs == ZMQ_DEALER;
        case ZMQ_DEALER:
            return theirs == ZMQ_REP || theirs == ZMQ_DEALER || theirs == ZMQ_ROUTER;
        case ZMQ_ROUTER:
            return theirs == ZMQ_REQ || theirs == ZMQ_DEALER || theirs == ZMQ_ROUTER;
        case ZMQ_PUSH:
            return theirs == ZMQ_PULL;
        case ZMQ_PULL:
            return theirs == ZMQ_PUSH;
        default:
            return false;
    }
}

int
shmipc__bridge_type (int user)
{
    switch (user) {
        case ZMQ_PAIR:                  return ZMQ_PAIR;
        case ZMQ_PUSH:                  return ZMQ_PULL;
        case ZMQ_PULL:                  return ZMQ_PUSH;
        //  XPUB/XSUB pass subscriptions as messages, which is what crosses
        //  the wire between a publisher and a subscriber
        case ZMQ_PUB: case ZMQ_XPUB:    return ZMQ_XSUB;
        case ZMQ_SUB: case ZMQ_XSUB:    return ZMQ_XPUB;
        //  A DEALER adds nothing and strips nothing: REQ's delimiter, REP's
        //  envelopes and ROUTER's addressing stay in the user's socket
        case ZMQ_REQ: case ZMQ_REP:
        case ZMQ_DEALER: case ZMQ_ROUTER:
            return ZMQ_DEALER;
        default:
            return -1;
    }
}

bool
shmipc__bridge_persists (int user)
{
    //  Senders that queue on a native connecting socket before the peer is
    //  there. Subscribers must not persist: a new bridge makes the user's
    //  socket send its subscriptions again, as on a native reconnect.
    return user == ZMQ_PUSH || user == ZMQ_DEALER || user == ZMQ_REQ
        || user == ZMQ_PAIR;
}
