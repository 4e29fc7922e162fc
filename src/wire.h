/*  =========================================================================
    wire - the records a channel sends over its Unix socket: encoding and
    checked decoding

    Owns nothing. Pure functions over bytes, so a fuzzer can drive the
    decoder directly. Every multi-byte field is little-endian.

    HELLO  type=1 role u16:version u32:magic u64:capacity u64:segment_size
           u16:name_size name...              (+ one descriptor: the segment)
    WAKE   type=2 0 0 0 u32:0                 (the peer asked to be woken)
    CTRL   type=3 0 0 0 u32:size payload...   (a control message)
    ACK    type=4 0 0 0 u32:consumed          (control messages read so far)
    POOL   type=5 0 0 0 u32:0                 (+ one descriptor: the sender's
                                               loan pool, at most once)
    PIPE   type=6 0 0 0 u32:0                 (+ one descriptor: a pipe of the
                                               sender's; wake it by writing
                                               a byte there, at most once)
    =========================================================================
*/

#ifndef SHMIPC_WIRE_H_INCLUDED
#define SHMIPC_WIRE_H_INCLUDED

#include "shmipc_common.h"

#define SHMIPC__WIRE_HELLO   1
#define SHMIPC__WIRE_WAKE    2
#define SHMIPC__WIRE_CTRL    3
#define SHMIPC__WIRE_ACK     4
#define SHMIPC__WIRE_POOL    5
#define SHMIPC__WIRE_PIPE    6

#define SHMIPC__WIRE_MAGIC   0x484d4853u     //  "SHMH"
//  2: PAD and LOAN records, hold tables and POOL (a version 1 peer would
//  overwrite what we hold). 3: PIPE (a version 2 peer would take it for a
//  violation). Older peers are refused at the HELLO
#define SHMIPC__WIRE_VERSION 3

//  Fixed part of a HELLO; other records have an 8-byte header.
#define SHMIPC__HELLO_FIXED  26
#define SHMIPC__RECORD_HEAD  8

//  Largest record on the socket.
#define SHMIPC__WIRE_MAX     (SHMIPC__RECORD_HEAD + SHMIPC_CTRL_MAX)

//  A decoded record. Pointers refer into the decoded buffer.
typedef struct {
    int type;                   //  SHMIPC__WIRE_*
    int role;                   //  HELLO: sender's role
    uint64_t capacity;          //  HELLO: sender's ring bytes
    uint64_t segment_size;      //  HELLO: sender's segment bytes
    const char *name;           //  HELLO: sender's name (not terminated)
    size_t name_size;           //  HELLO: its length
    uint32_t value;             //  ACK: count; CTRL: payload size
    const uint8_t *payload;     //  CTRL: payload
} shmipc__wire_t;

//  Encode a HELLO into buffer (at least SHMIPC__HELLO_FIXED + name_size
//  bytes). Returns the size.
size_t
    shmipc__wire_hello (uint8_t *buffer, int role, uint64_t capacity,
                        uint64_t segment_size, const char *name, size_t name_size);

//  Encode an 8-byte header record (WAKE, ACK, or CTRL without payload).
void
    shmipc__wire_header (uint8_t *buffer, int type, uint32_t value);

//  Decode size bytes. Trusts nothing: the type must be known, the size must
//  be exactly what the type implies, names printable, the magic and
//  version ours. Returns 0, or -1 with errno EPROTO and *reason set.
int
    shmipc__wire_decode (const uint8_t *buffer, size_t size,
                         shmipc__wire_t *record, const char **reason);

#endif
