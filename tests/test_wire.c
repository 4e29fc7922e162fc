/*  test_wire - socket records: encoding, decoding, and refusal (EPROTO with
    a reason) of every malformed variant; random bytes never crash it.
*/
#include "testutil.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

//  Decode expecting refusal: EPROTO and a reason to log.
static void
s_assert_refused (const uint8_t *buffer, size_t size)
{
    //  A heap copy of the exact size: ASan sees any read past it
    uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
    assert_non_null (copy);
    if (size)
        memcpy (copy, buffer, size);
    shmipc__wire_t record;
    const char *reason = NULL;
    errno = 0;
    assert_int_equal (shmipc__wire_decode (copy, size, &record, &reason), -1);
    assert_int_equal (errno, EPROTO);
    assert_non_null (reason);
    assert_true (strlen (reason) > 0);
    free (copy);
}

//  Decode expecting success.
static shmipc__wire_t
s_decode_ok (const uint8_t *buffer, size_t size)
{
    shmipc__wire_t record;
    const char *reason = NULL;
    int rc = shmipc__wire_decode (buffer, size, &record, &reason);
    if (rc)
        print_error ("refused: %s\n", reason);
    assert_int_equal (rc, 0);
    return record;
}

static void
test_wire_hello_round_trips (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__HELLO_FIXED + SHMIPC_NAME_MAX];
    char name [SHMIPC_NAME_MAX];
    for (size_t index = 0; index < sizeof name; index++)
        name [index] = (char) (0x20 + index % 95);
    size_t name_sizes [] = { 0, 1, 17, SHMIPC_NAME_MAX };
    for (int role = 0; role <= 1; role++)
        for (size_t which = 0; which < 4; which++) {
            size_t name_size = name_sizes [which];
            uint64_t capacity = 0x0123456789abcdefULL + (uint64_t) which;
            uint64_t segment_size = 0xfedcba9876543210ULL - (uint64_t) role;
            size_t size = shmipc__wire_hello (buffer, role, capacity, segment_size,
                                              name, name_size);
            assert_int_equal (size, SHMIPC__HELLO_FIXED + name_size);
            shmipc__wire_t record = s_decode_ok (buffer, size);
            assert_int_equal (record.type, SHMIPC__WIRE_HELLO);
            assert_int_equal (record.role, role);
            assert_true (record.capacity == capacity);
            assert_true (record.segment_size == segment_size);
            assert_int_equal (record.name_size, name_size);
            assert_ptr_equal (record.name, (const char *) buffer + SHMIPC__HELLO_FIXED);
            if (name_size)
                assert_memory_equal (record.name, name, name_size);
        }
    tu_assert_baseline (baseline);
}

static void
test_wire_hello_layout_is_little_endian (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__HELLO_FIXED + 3];
    size_t size = shmipc__wire_hello (buffer, 1, 0x1122334455667788ULL,
                                      0x0102030405060708ULL, "abc", 3);
    const uint8_t expected [SHMIPC__HELLO_FIXED + 3] = {
        1, 1, 3, 0, 'S', 'H', 'M', 'H',
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
        3, 0, 'a', 'b', 'c'
    };
    assert_int_equal (size, sizeof expected);
    assert_memory_equal (buffer, expected, sizeof expected);
    uint8_t header [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (header, SHMIPC__WIRE_ACK, 0xa1b2c3d4u);
    const uint8_t ack [SHMIPC__RECORD_HEAD] = { 4, 0, 0, 0, 0xd4, 0xc3, 0xb2, 0xa1 };
    assert_memory_equal (header, ack, sizeof ack);
    tu_assert_baseline (baseline);
}

static void
test_wire_header_records_round_trip (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__WIRE_MAX];
    //  WAKE
    memset (buffer, 0xff, sizeof buffer);
    shmipc__wire_header (buffer, SHMIPC__WIRE_WAKE, 0);
    shmipc__wire_t record = s_decode_ok (buffer, SHMIPC__RECORD_HEAD);
    assert_int_equal (record.type, SHMIPC__WIRE_WAKE);
    assert_int_equal (record.value, 0);
    //  POOL and PIPE: a header alone (their descriptor rides beside it)
    int with_fd [] = { SHMIPC__WIRE_POOL, SHMIPC__WIRE_PIPE };
    for (size_t index = 0; index < 2; index++) {
        memset (buffer, 0xff, sizeof buffer);
        shmipc__wire_header (buffer, with_fd [index], 0);
        record = s_decode_ok (buffer, SHMIPC__RECORD_HEAD);
        assert_int_equal (record.type, with_fd [index]);
        assert_int_equal (record.value, 0);
    }
    //  ACK, any count
    uint32_t counts [] = { 0, 1, SHMIPC_CTRL_WINDOW, UINT32_MAX };
    for (size_t index = 0; index < 4; index++) {
        memset (buffer, 0xff, sizeof buffer);
        shmipc__wire_header (buffer, SHMIPC__WIRE_ACK, counts [index]);
        record = s_decode_ok (buffer, SHMIPC__RECORD_HEAD);
        assert_int_equal (record.type, SHMIPC__WIRE_ACK);
        assert_int_equal (record.value, counts [index]);
    }
    //  CTRL, from empty to the largest
    uint32_t sizes [] = { 0, 1, 100, SHMIPC_CTRL_MAX };
    for (size_t index = 0; index < 4; index++) {
        shmipc__wire_header (buffer, SHMIPC__WIRE_CTRL, sizes [index]);
        tu_fill (buffer + SHMIPC__RECORD_HEAD, sizes [index], index);
        record = s_decode_ok (buffer, SHMIPC__RECORD_HEAD + sizes [index]);
        assert_int_equal (record.type, SHMIPC__WIRE_CTRL);
        assert_int_equal (record.value, sizes [index]);
        assert_ptr_equal (record.payload, buffer + SHMIPC__RECORD_HEAD);
        assert_true (tu_check (record.payload, sizes [index], index));
    }
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_empty_and_short_records (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__HELLO_FIXED + 4];
    s_assert_refused (buffer, 0);
    //  Every truncation of a valid HELLO
    size_t size = shmipc__wire_hello (buffer, 0, 4096, 8192, "abcd", 4);
    for (size_t cut = 1; cut < size; cut++)
        s_assert_refused (buffer, cut);
    //  And of the 8-byte records
    int types [] = { SHMIPC__WIRE_WAKE, SHMIPC__WIRE_CTRL, SHMIPC__WIRE_ACK,
                     SHMIPC__WIRE_POOL, SHMIPC__WIRE_PIPE, 0, 99 };
    for (size_t index = 0; index < sizeof types / sizeof types [0]; index++) {
        shmipc__wire_header (buffer, types [index], 0);
        for (size_t cut = 1; cut < SHMIPC__RECORD_HEAD; cut++)
            s_assert_refused (buffer, cut);
    }
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_hello_with_bad_magic_version_or_role (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t good [SHMIPC__HELLO_FIXED + 4], buffer [SHMIPC__HELLO_FIXED + 4];
    size_t size = shmipc__wire_hello (good, 0, 4096, 8192, "name", 4);
    s_decode_ok (good, size);
    //  Every single-bit change of the magic
    for (size_t bit = 0; bit < 32; bit++) {
        memcpy (buffer, good, size);
        buffer [4 + bit / 8] ^= (uint8_t) (1u << (bit % 8));
        s_assert_refused (buffer, size);
    }
    //  Other versions: 1 and 2 too (a version 1 writer would overwrite
    //  what we hold; a version 2 peer would take our PIPE for a violation)
    uint16_t versions [] = { 0, 1, 2, 4, 0x0300, 0xffff };
    for (size_t index = 0; index < sizeof versions / sizeof versions [0]; index++) {
        memcpy (buffer, good, size);
        buffer [2] = (uint8_t) versions [index];
        buffer [3] = (uint8_t) (versions [index] >> 8);
        s_assert_refused (buffer, size);
    }
    //  Roles other than 0 and 1
    for (int role = 2; role < 256; role++) {
        memcpy (buffer, good, size);
        buffer [1] = (uint8_t) role;
        s_assert_refused (buffer, size);
    }
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_hello_with_name_size_mismatch (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__HELLO_FIXED + 300];
    memset (buffer, 'n', sizeof buffer);
    size_t size = shmipc__wire_hello (buffer, 1, 4096, 8192, "name", 4);
    //  Record longer or shorter than the name size says
    s_assert_refused (buffer, size + 1);
    s_assert_refused (buffer, size - 1);
    s_assert_refused (buffer, SHMIPC__HELLO_FIXED);
    s_assert_refused (buffer, sizeof buffer);
    //  A name size past SHMIPC_NAME_MAX, even with the bytes to match
    char name [300];
    memset (name, 'n', sizeof name);
    size = shmipc__wire_hello (buffer, 1, 4096, 8192, name, SHMIPC_NAME_MAX + 1);
    s_assert_refused (buffer, size);
    size = shmipc__wire_hello (buffer, 1, 4096, 8192, name, SHMIPC_NAME_MAX);
    s_decode_ok (buffer, size);
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_hello_with_control_character_in_name (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__HELLO_FIXED + 8];
    for (int ch = 0; ch < 256; ch++) {
        bool control = ch < 0x20 || ch == 0x7f;
        for (size_t at = 0; at < 8; at += 7) {
            char name [8];
            memcpy (name, "name-ok!", 8);
            name [at] = (char) ch;
            size_t size = shmipc__wire_hello (buffer, 0, 4096, 8192, name, 8);
            if (control)
                s_assert_refused (buffer, size);
            else {
                shmipc__wire_t record = s_decode_ok (buffer, size);
                assert_int_equal ((uint8_t) record.name [at], ch);
            }
        }
    }
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_reserved_bits (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__RECORD_HEAD + 4];
    int types [] = { SHMIPC__WIRE_WAKE, SHMIPC__WIRE_CTRL, SHMIPC__WIRE_ACK,
                     SHMIPC__WIRE_POOL, SHMIPC__WIRE_PIPE };
    for (size_t index = 0; index < sizeof types / sizeof types [0]; index++)
        for (size_t bit = 8; bit < 32; bit++) {
            uint32_t value = types [index] == SHMIPC__WIRE_CTRL ? 4 : 0;
            shmipc__wire_header (buffer, types [index], value);
            memset (buffer + SHMIPC__RECORD_HEAD, 'p', 4);
            size_t size = SHMIPC__RECORD_HEAD + value;
            s_decode_ok (buffer, size);
            buffer [bit / 8] ^= (uint8_t) (1u << (bit % 8));
            s_assert_refused (buffer, size);
        }
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_ctrl_size_mismatch_or_too_large (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t room = SHMIPC__RECORD_HEAD + SHMIPC_CTRL_MAX + 16;
    uint8_t *buffer = (uint8_t *) calloc (1, room);
    assert_non_null (buffer);
    uint32_t sizes [] = { 0, 1, 100, SHMIPC_CTRL_MAX };
    for (size_t index = 0; index < 4; index++) {
        shmipc__wire_header (buffer, SHMIPC__WIRE_CTRL, sizes [index]);
        size_t size = SHMIPC__RECORD_HEAD + sizes [index];
        s_assert_refused (buffer, size + 1);
        if (sizes [index])
            s_assert_refused (buffer, size - 1);
        s_assert_refused (buffer, room);
    }
    //  Past SHMIPC_CTRL_MAX, even when the bytes are all there
    uint32_t large [] = { SHMIPC_CTRL_MAX + 1, SHMIPC_CTRL_MAX + 8 };
    for (size_t index = 0; index < 2; index++) {
        shmipc__wire_header (buffer, SHMIPC__WIRE_CTRL, large [index]);
        s_assert_refused (buffer, SHMIPC__RECORD_HEAD + large [index]);
    }
    //  A size that would wrap a 32-bit sum to 0
    shmipc__wire_header (buffer, SHMIPC__WIRE_CTRL, UINT32_MAX - 7);
    s_assert_refused (buffer, SHMIPC__RECORD_HEAD);
    free (buffer);
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_wake_with_value_and_wrong_sizes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__RECORD_HEAD + 8];
    memset (buffer, 0, sizeof buffer);
    uint32_t values [] = { 1, 0x100, 0x80000000u, UINT32_MAX };
    for (size_t index = 0; index < 4; index++) {
        shmipc__wire_header (buffer, SHMIPC__WIRE_WAKE, values [index]);
        s_assert_refused (buffer, SHMIPC__RECORD_HEAD);
    }
    //  Trailing bytes after a WAKE or an ACK
    shmipc__wire_header (buffer, SHMIPC__WIRE_WAKE, 0);
    s_assert_refused (buffer, SHMIPC__RECORD_HEAD + 1);
    s_assert_refused (buffer, SHMIPC__RECORD_HEAD + 8);
    shmipc__wire_header (buffer, SHMIPC__WIRE_ACK, 3);
    s_assert_refused (buffer, SHMIPC__RECORD_HEAD + 1);
    s_assert_refused (buffer, SHMIPC__RECORD_HEAD + 8);
    tu_assert_baseline (baseline);
}

//  Decode expecting refusal for exactly this reason.
static void
s_assert_refused_as (const uint8_t *buffer, size_t size, const char *expected)
{
    s_assert_refused (buffer, size);
    shmipc__wire_t record;
    const char *reason = NULL;
    assert_int_equal (shmipc__wire_decode (buffer, size, &record, &reason), -1);
    assert_string_equal (reason, expected);
}

static void
test_wire_pipe_decodes_with_value_0_and_8_bytes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__RECORD_HEAD];
    memset (buffer, 0xff, sizeof buffer);
    shmipc__wire_header (buffer, SHMIPC__WIRE_PIPE, 0);
    const uint8_t expected [SHMIPC__RECORD_HEAD] = { 6, 0, 0, 0, 0, 0, 0, 0 };
    assert_memory_equal (buffer, expected, sizeof expected);
    shmipc__wire_t record = s_decode_ok (buffer, sizeof buffer);
    assert_int_equal (record.type, SHMIPC__WIRE_PIPE);
    assert_int_equal (record.value, 0);
    assert_null (record.payload);
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_pipe_with_value_payload_or_short_size (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__RECORD_HEAD + 16];
    memset (buffer, 0, sizeof buffer);
    //  A value, whatever it is (a PIPE carries nothing but its descriptor)
    uint32_t values [] = { 1, 8, 0x100, 0x80000000u, UINT32_MAX };
    for (size_t index = 0; index < sizeof values / sizeof values [0]; index++) {
        shmipc__wire_header (buffer, SHMIPC__WIRE_PIPE, values [index]);
        s_assert_refused_as (buffer, SHMIPC__RECORD_HEAD, "bad PIPE");
        //  Even with as many bytes after it as the value says
        if (values [index] <= 16)
            s_assert_refused_as (buffer, SHMIPC__RECORD_HEAD + values [index], "bad PIPE");
    }
    //  Bytes after the header
    shmipc__wire_header (buffer, SHMIPC__WIRE_PIPE, 0);
    for (size_t extra = 1; extra <= 16; extra++)
        s_assert_refused_as (buffer, SHMIPC__RECORD_HEAD + extra, "bad PIPE");
    //  Fewer than 8 bytes
    for (size_t cut = 1; cut < SHMIPC__RECORD_HEAD; cut++)
        s_assert_refused_as (buffer, cut, "short record");
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_version_2_hello (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  What a version 2 peer sends: the same HELLO with 2 in its version
    uint8_t buffer [SHMIPC__HELLO_FIXED + 4];
    size_t size = shmipc__wire_hello (buffer, 0, 4096, 8192, "name", 4);
    assert_int_equal (buffer [2], SHMIPC__WIRE_VERSION);
    assert_int_equal (buffer [3], 0);
    assert_int_equal (SHMIPC__WIRE_VERSION, 3);
    s_decode_ok (buffer, size);
    buffer [2] = 2;
    s_assert_refused_as (buffer, size, "unsupported protocol version");
    tu_assert_baseline (baseline);
}

static void
test_wire_rejects_unknown_type (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [SHMIPC__HELLO_FIXED + 4];
    for (int type = 0; type < 256; type++) {
        if (type >= SHMIPC__WIRE_HELLO && type <= SHMIPC__WIRE_PIPE)
            continue;
        shmipc__wire_header (buffer, type, 0);
        s_assert_refused (buffer, SHMIPC__RECORD_HEAD);
        //  Also with the shape of a HELLO
        shmipc__wire_hello (buffer, 0, 4096, 8192, "abcd", 4);
        buffer [0] = (uint8_t) type;
        s_assert_refused (buffer, sizeof buffer);
    }
    tu_assert_baseline (baseline);
}

static void
test_wire_random_bytes_decode_safely (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint64_t random = 0x9E3779B97F4A7C15ULL;
    long rounds = tu_scaled (300000, 3000);
    long accepted = 0;
    for (long round = 0; round < rounds; round++) {
        size_t size = (size_t) (tu_random (&random) % 300);
        uint8_t *buffer = (uint8_t *) malloc (size ? size : 1);
        assert_non_null (buffer);
        tu_fill (buffer, size, (uint64_t) round);
        //  Mostly records that are nearly right, so that deep paths run
        if (size && tu_random (&random) % 4) {
            uint8_t valid [SHMIPC__HELLO_FIXED + 300];
            size_t valid_size;
            uint64_t kind = tu_random (&random) % 6;
            if (kind == 0 && size >= SHMIPC__HELLO_FIXED) {
                char name [300];
                memset (name, 'a' + (char) (round % 26), sizeof name);
                valid_size = shmipc__wire_hello (valid, (int) (round % 2), 4096, 8192,
                                                 name, size - SHMIPC__HELLO_FIXED);
            }
            else {
                int type = (int) (kind + 1);
                uint32_t value = type == SHMIPC__WIRE_CTRL
                               ? (uint32_t) (size > 8 ? size - 8 : 0) : 0;
                shmipc__wire_header (valid, type, value);
                memset (valid + SHMIPC__RECORD_HEAD, 'p', sizeof valid - SHMIPC__RECORD_HEAD);
                valid_size = SHMIPC__RECORD_HEAD + value;
            }
            memcpy (buffer, valid, size < valid_size ? size : valid_size);
            //  Then a few random byte changes
            uint64_t changes = tu_random (&random) % 3;
            for (uint64_t change = 0; change < changes; change++)
                buffer [tu_random (&random) % size] = (uint8_t) tu_random (&random);
        }
        shmipc__wire_t record;
        const char *reason = NULL;
        errno = 0;
        int rc = shmipc__wire_decode (buffer, size, &record, &reason);
        if (rc == 0) {
            accepted++;
            assert_true (record.type >= SHMIPC__WIRE_HELLO
                         && record.type <= SHMIPC__WIRE_PIPE);
            assert_int_equal (record.type, buffer [0]);
            switch (record.type) {
                case SHMIPC__WIRE_HELLO:
                    assert_int_equal (size, SHMIPC__HELLO_FIXED + record.name_size);
                    assert_true (record.name_size <= SHMIPC_NAME_MAX);
                    assert_true (record.role == 0 || record.role == 1);
                    for (size_t index = 0; index < record.name_size; index++)
                        assert_true ((uint8_t) record.name [index] >= 0x20
                                     && (uint8_t) record.name [index] != 0x7f);
                    break;
                case SHMIPC__WIRE_CTRL:
                    assert_int_equal (size, SHMIPC__RECORD_HEAD + record.value);
                    assert_true (record.value <= SHMIPC_CTRL_MAX);
                    assert_ptr_equal (record.payload, buffer + SHMIPC__RECORD_HEAD);
                    break;
                case SHMIPC__WIRE_WAKE:
                case SHMIPC__WIRE_POOL:
                case SHMIPC__WIRE_PIPE:
                    assert_int_equal (record.value, 0);
                    assert_int_equal (size, SHMIPC__RECORD_HEAD);
                    break;
                default:
                    assert_int_equal (size, SHMIPC__RECORD_HEAD);
            }
        }
        else {
            assert_int_equal (rc, -1);
            assert_int_equal (errno, EPROTO);
            assert_non_null (reason);
            assert_true (strlen (reason) > 0);
        }
        free (buffer);
    }
    //  The near-valid inputs reach acceptance often
    assert_true (accepted > rounds / 20);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_wire_hello_round_trips),
        cmocka_unit_test (test_wire_hello_layout_is_little_endian),
        cmocka_unit_test (test_wire_header_records_round_trip),
        cmocka_unit_test (test_wire_rejects_empty_and_short_records),
        cmocka_unit_test (test_wire_rejects_hello_with_bad_magic_version_or_role),
        cmocka_unit_test (test_wire_rejects_hello_with_name_size_mismatch),
        cmocka_unit_test (test_wire_rejects_hello_with_control_character_in_name),
        cmocka_unit_test (test_wire_rejects_reserved_bits),
        cmocka_unit_test (test_wire_rejects_ctrl_size_mismatch_or_too_large),
        cmocka_unit_test (test_wire_rejects_wake_with_value_and_wrong_sizes),
        cmocka_unit_test (test_wire_pipe_decodes_with_value_0_and_8_bytes),
        cmocka_unit_test (test_wire_rejects_pipe_with_value_payload_or_short_size),
        cmocka_unit_test (test_wire_rejects_version_2_hello),
        cmocka_unit_test (test_wire_rejects_unknown_type),
        cmocka_unit_test (test_wire_random_bytes_decode_safely),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
