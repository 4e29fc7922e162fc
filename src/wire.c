/*  =========================================================================
    wire - encode and check the records a channel sends on its socket

    Owns nothing. The decoder is the first thing a hostile peer's bytes
    meet; it reads only inside the buffer it is given.
    =========================================================================
*/

#include "wire.h"
#include "util.h"

#include <errno.h>
#include <string.h>

static void
s_put16 (uint8_t *at, uint16_t value)
{
    at [0] = (uint8_t) value;
    at [1] = (uint8_t) (value >> 8);
}

static void
s_put32 (uint8_t *at, uint32_t value)
{
    for (int index = 0; index < 4; index++)
        at [index] = (uint8_t) (value >> (8 * index));
}

static uint16_t
s_get16 (const uint8_t *at)
{
    return (uint16_t) (at [0] | at [1] << 8);
}

static uint32_t
s_get32 (const uint8_t *at)
{
    uint32_t value = 0;
    for (int index = 3; index >= 0; index--)
        value = value << 8 | at [index];
    return value;
}

size_t
shmipc__wire_hello (uint8_t *buffer, int role, uint64_t capacity,
                    uint64_t segment_size, const char *name, size_t name_size)
{
    buffer [0] = SHMIPC__WIRE_HELLO;
    buffer [1] = (uint8_t) role;
    s_put16 (buffer + 2, SHMIPC__WIRE_VERSION);
    s_put32 (buffer + 4, SHMIPC__WIRE_MAGIC);
    shmipc__put64 (buffer + 8, capacity);
    shmipc__put64 (buffer + 16, segment_size);
    s_put16 (buffer + 24, (uint16_t) name_size);
    memcpy (buffer + SHMIPC__HELLO_FIXED, name, name_size);
    return SHMIPC__HELLO_FIXED + name_size;
}

void
shmipc__wire_header (uint8_t *buffer, int type, uint32_t value)
{
    memset (buffer, 0, SHMIPC__RECORD_HEAD);
    buffer [0] = (uint8_t) type;
    s_put32 (buffer + 4, value);
}

//  Fail decoding with reason.
static int
s_bad (const char **reason, const char *why)
{
    *reason = why;
    errno = EPROTO;
    return -1;
}

int
shmipc__wire_decode (const uint8_t *buffer, size_t size,
                     shmipc__wire_t *record, const char **reason)
{
    //  Trusts: nothing; reads only buffer [0..size).
    memset (record, 0, sizeof *record);
    *reason = "";
    if (size < 1)
        return s_bad (reason, "empty record");
    record->type = buffer [0];
    if (record->type == SHMIPC__WIRE_HELLO) {
        if (size < SHMIPC__HELLO_FIXED)
            return s_bad (reason, "short HELLO");
        if (s_get32 (buffer + 4) != SHMIPC__WIRE_MAGIC)
            return s_bad (reason, "bad magic");
        if (s_get16 (buffer + 2) != SHMIPC__WIRE_VERSION)
            return s_bad (reason, "unsupported protocol version");
        record->role = buffer [1];
        if (record->role != 0 && record->role != 1)
            return s_bad (reason, "bad role");
        record->capacity = shmipc__get64 (buffer + 8);
        record->segment_size = shmipc__get64 (buffer + 16);
        record->name_size = s_get16 (buffer + 24);
        if (record->name_size > SHMIPC_NAME_MAX
        ||  size != SHMIPC__HELLO_FIXED + record->name_size)
            return s_bad (reason, "bad name size");
        record->name = (const char *) buffer + SHMIPC__HELLO_FIXED;
        if (!shmipc__printable (record->name, record->name_size))
            return s_bad (reason, "control character in name");
        return 0;
    }
    if (size < SHMIPC__RECORD_HEAD)
        return s_bad (reason, "short record");
    if (buffer [1] || buffer [2] || buffer [3])
        return s_bad (reason, "reserved bits set");
    record->value = s_get32 (buffer + 4);
    switch (record->type) {
        case SHMIPC__WIRE_WAKE:
            if (size != SHMIPC__RECORD_HEAD || record->value != 0)
                return s_bad (reason, "bad WAKE");
            return 0;
        case SHMIPC__WIRE_ACK:
            if (size != SHMIPC__RECORD_HEAD)
                return s_bad (reason, "bad ACK");
            return 0;
        case SHMIPC__WIRE_POOL:
            if (size != SHMIPC__RECORD_HEAD || record->value != 0)
                return s_bad (reason, "bad POOL");
            return 0;
        case SHMIPC__WIRE_PIPE:
            if (size != SHMIPC__RECORD_HEAD || record->value != 0)
                return s_bad (reason, "bad PIPE");
            return 0;
        case SHMIPC__WIRE_CTRL:
            if (record->value > SHMIPC_CTRL_MAX
            ||  size != SHMIPC__RECORD_HEAD + record->value)
                return s_bad (reason, "bad CTRL size");
            record->payload = buffer + SHMIPC__RECORD_HEAD;
            return 0;
        default:
            return s_bad (reason, "unknown record type");
    }
}
