/*  =========================================================================
    fuzz_handshake - libFuzzer harness for what a peer says first: the
    channel's socket records (HELLO, WAKE, CTRL, ACK, POOL, PIPE) and the
    plugin's greeting

    Owns nothing. Both decoders must accept or refuse any bytes without
    reading outside them; whatever they accept must encode back to the very
    same bytes (so no two inputs mean the same thing).
    =========================================================================
*/

#include "wire.h"
#include "../../plugin/greeting.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  An invariant that must hold whatever the input: checked in every build
//  (assert would vanish under NDEBUG)
#define S_CHECK(condition) do { \
    if (!(condition)) { \
        fprintf (stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
        abort (); \
    } \
} while (0)

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  A private copy of exactly size bytes, so that any read past the end
    //  is caught by ASan
    uint8_t *buffer = (uint8_t *) malloc (size ? size : 1);
    if (size)
        memcpy (buffer, data, size);

    shmipc__wire_t record;
    const char *reason;
    if (shmipc__wire_decode (buffer, size, &record, &reason) == 0) {
        uint8_t again [SHMIPC__WIRE_MAX + SHMIPC__HELLO_FIXED + SHMIPC_NAME_MAX];
        size_t again_size;
        if (record.type == SHMIPC__WIRE_HELLO)
            again_size = shmipc__wire_hello (again, record.role, record.capacity,
                                             record.segment_size, record.name,
                                             record.name_size);
        else {
            shmipc__wire_header (again, record.type, record.value);
            again_size = SHMIPC__RECORD_HEAD;
            if (record.type == SHMIPC__WIRE_CTRL) {
                memcpy (again + again_size, record.payload, record.value);
                again_size += record.value;
            }
        }
        S_CHECK (again_size == size && memcmp (again, buffer, size) == 0);
    }
    else
        S_CHECK (*reason);

    shmipc__greeting_t greeting;
    if (shmipc__greeting_decode (buffer, size, &greeting) == 0) {
        uint8_t again [SHMIPC__GREETING_MAX];
        size_t again_size = shmipc__greeting_encode (again, greeting.type,
                                                     greeting.routing_id,
                                                     greeting.routing_id_size);
        S_CHECK (again_size == size && memcmp (again, buffer, size) == 0);
        S_CHECK (shmipc__type_supported (greeting.type));
    }
    free (buffer);
    return 0;
}
