/*  test_smoke - a channel pair in one process passes a message each way */
#include "testutil.h"
#include <string.h>

static void
test_channel_pair_exchanges_one_message_each_way (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    assert_int_equal (shmipc_channel_send (a, "hello", 5, 0), 0);
    shmipc_msg_t *msg = shmipc_channel_recv (b, 0);
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_size (msg, 0), 5);
    assert_memory_equal (shmipc_msg_data (msg, 0), "hello", 5);
    assert_int_equal (shmipc_channel_send_msg (b, msg, 0), 0);
    assert_int_equal (shmipc_channel_recv_into (a, msg, 0), 0);
    assert_memory_equal (shmipc_msg_data (msg, 0), "hello", 5);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_channel_pair_exchanges_one_message_each_way),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
