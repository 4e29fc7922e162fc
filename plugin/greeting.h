/*  =========================================================================
    greeting - what two shmipc actors tell each other about their ZeroMQ
    sockets once a channel is up, and which socket types may talk

    Owns nothing. The greeting travels as the channel's first control
    message, like ZMTP's READY command: socket type and routing id.
    =========================================================================
*/

#ifndef SHMIPC_GREETING_H_INCLUDED
#define SHMIPC_GREETING_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Longest routing id (ZMTP's limit, and libzmq's ZMQ_ROUTING_ID).
#define SHMIPC__ROUTING_ID_MAX  255

//  Room for a user socket's private inproc endpoint name.
#define SHMIPC__INPROC_MAX      64

//  How long a connection may take over its greeting, once the channel's
//  handshake is done (ms; the handshake has the same bound).
#define SHMIPC__GREETING_MS     5000

#define SHMIPC__GREETING_MAX  (8 + SHMIPC__ROUTING_ID_MAX)

//  A decoded greeting.
typedef struct {
    int type;                   //  The sender's user socket type (ZMQ_*)
    uint8_t routing_id [SHMIPC__ROUTING_ID_MAX];    //  Its routing id
                                                    //  (ZMQ_ROUTING_ID)
    size_t routing_id_size;     //  0 if none was set
} shmipc__greeting_t;

//  Encode a greeting into buffer (SHMIPC__GREETING_MAX bytes); returns size.
size_t
    shmipc__greeting_encode (uint8_t *buffer, int type,
                             const uint8_t *routing_id, size_t routing_id_size);

//  Decode size bytes. Trusts nothing: magic, version, exact size and a
//  known socket type are checked. Returns 0 or -1 (errno EPROTO).
int
    shmipc__greeting_decode (const uint8_t *buffer, size_t size,
                             shmipc__greeting_t *greeting);

//  Return true if a socket of type mine may talk to one of type theirs,
//  by ZMTP's rules (RFC 37).
bool
    shmipc__types_compatible (int mine, int theirs);

//  Return true if type is one the shm transport serves.
bool
    shmipc__type_supported (int type);

//  Return the type of the bridge socket the actor puts next to a user
//  socket of type user: a peer that type accepts, and that hands the actor
//  the frames exactly as they would cross the wire.
int
    shmipc__bridge_type (int user);

//  Return true if the bridge for a connecting user socket of this type
//  should outlive a connection, so that messages sent before (or between)
//  connections wait for the next one, as on a native connecting socket.
bool
    shmipc__bridge_persists (int user);

#endif
