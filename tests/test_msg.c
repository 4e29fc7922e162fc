/*  test_msg - messages of frames: adding, growing, detaching, resetting and
    reusing, with the content size kept exact throughout.
*/
#include "testutil.h"
#include "shmipc_msg.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void
test_msg_new_message_is_empty (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_frames (msg), 0);
    assert_int_equal (shmipc_msg_content_size (msg), 0);
    shmipc_msg_destroy (&msg);
    assert_null (msg);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_addmem_appends_copies (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    uint8_t source [1000];
    size_t sizes [] = { 1, 7, 1000, 64 };
    size_t total = 0;
    for (size_t index = 0; index < 4; index++) {
        tu_fill (source, sizes [index], index);
        assert_int_equal (shmipc_msg_addmem (msg, source, sizes [index]), 0);
        //  A copy: changing the source afterwards changes nothing
        memset (source, 0xee, sizeof source);
        total += sizes [index];
        assert_int_equal (shmipc_msg_frames (msg), index + 1);
        assert_int_equal (shmipc_msg_content_size (msg), total);
    }
    for (size_t index = 0; index < 4; index++) {
        assert_int_equal (shmipc_msg_size (msg, index), sizes [index]);
        assert_ptr_not_equal (shmipc_msg_data (msg, index), source);
        assert_true (tu_check (shmipc_msg_data (msg, index), sizes [index], index));
    }
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_add_frame_returns_the_frame_buffer (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    uint8_t *one = (uint8_t *) shmipc_msg_add_frame (msg, 300);
    assert_non_null (one);
    tu_fill (one, 300, 1);
    uint8_t *two = (uint8_t *) shmipc_msg_add_frame (msg, 5);
    assert_non_null (two);
    tu_fill (two, 5, 2);
    assert_ptr_equal (shmipc_msg_data (msg, 0), one);
    assert_ptr_equal (shmipc_msg_data (msg, 1), two);
    assert_int_equal (shmipc_msg_size (msg, 0), 300);
    assert_int_equal (shmipc_msg_size (msg, 1), 5);
    assert_int_equal (shmipc_msg_content_size (msg), 305);
    assert_true (tu_check (shmipc_msg_data (msg, 0), 300, 1));
    assert_true (tu_check (shmipc_msg_data (msg, 1), 5, 2));
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_empty_frames_have_null_data_and_zero_size (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_addmem (msg, NULL, 0), 0);
    assert_int_equal (shmipc_msg_addmem (msg, "ignored", 0), 0);
    //  Success is not NULL, even for no bytes
    assert_non_null (shmipc_msg_add_frame (msg, 0));
    assert_int_equal (shmipc_msg_addmem (msg, "x", 1), 0);
    assert_int_equal (shmipc_msg_frames (msg), 4);
    assert_int_equal (shmipc_msg_content_size (msg), 1);
    for (size_t index = 0; index < 3; index++) {
        assert_null (shmipc_msg_data (msg, index));
        assert_int_equal (shmipc_msg_size (msg, index), 0);
    }
    assert_memory_equal (shmipc_msg_data (msg, 3), "x", 1);
    //  An emptied frame (reset, then reused empty) is NULL again
    shmipc_msg_reset (msg);
    assert_int_equal (shmipc_msg_addmem (msg, "abc", 3), 0);
    shmipc_msg_reset (msg);
    assert_int_equal (shmipc_msg_addmem (msg, NULL, 0), 0);
    assert_null (shmipc_msg_data (msg, 0));
    assert_int_equal (shmipc_msg_size (msg, 0), 0);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_grow_frame_extends_the_last_frame (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_addmem (msg, "first", 5), 0);
    assert_int_equal (shmipc_msg_addmem (msg, "abc", 3), 0);
    char *tail = (char *) shmipc_msg_grow_frame (msg, 3);
    assert_non_null (tail);
    memcpy (tail, "def", 3);
    assert_int_equal (shmipc_msg_frames (msg), 2);
    assert_int_equal (shmipc_msg_size (msg, 1), 6);
    assert_memory_equal (shmipc_msg_data (msg, 1), "abcdef", 6);
    assert_int_equal (shmipc_msg_size (msg, 0), 5);
    assert_int_equal (shmipc_msg_content_size (msg), 11);
    //  Growing by nothing changes nothing
    assert_non_null (shmipc_msg_grow_frame (msg, 0));
    assert_int_equal (shmipc_msg_size (msg, 1), 6);
    assert_int_equal (shmipc_msg_content_size (msg), 11);
    //  Many small pieces, the way a chunked frame is reassembled
    uint8_t whole [20000];
    tu_fill (whole, sizeof whole, 9);
    assert_non_null (shmipc_msg_add_frame (msg, 0));
    size_t done = 0, piece = 1;
    while (done < sizeof whole) {
        if (piece > sizeof whole - done)
            piece = sizeof whole - done;
        uint8_t *at = (uint8_t *) shmipc_msg_grow_frame (msg, piece);
        assert_non_null (at);
        memcpy (at, whole + done, piece);
        done += piece;
        piece = piece * 3 % 997 + 1;
    }
    assert_int_equal (shmipc_msg_size (msg, 2), sizeof whole);
    assert_true (tu_check (shmipc_msg_data (msg, 2), sizeof whole, 9));
    assert_int_equal (shmipc_msg_content_size (msg), 11 + sizeof whole);
    assert_memory_equal (shmipc_msg_data (msg, 0), "first", 5);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_grow_without_a_frame_gives_einval (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    errno = 0;
    assert_null (shmipc_msg_grow_frame (msg, 10));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_msg_grow_frame (msg, 0));
    assert_int_equal (errno, EINVAL);
    //  After a reset there is no frame either, though buffers are kept
    assert_int_equal (shmipc_msg_addmem (msg, "abc", 3), 0);
    shmipc_msg_reset (msg);
    errno = 0;
    assert_null (shmipc_msg_grow_frame (msg, 10));
    assert_int_equal (errno, EINVAL);
    assert_int_equal (shmipc_msg_frames (msg), 0);
    assert_int_equal (shmipc_msg_content_size (msg), 0);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_grow_past_size_max_gives_enomem (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_addmem (msg, "abc", 3), 0);
    errno = 0;
    assert_null (shmipc_msg_grow_frame (msg, SIZE_MAX));
    assert_int_equal (errno, ENOMEM);
    errno = 0;
    assert_null (shmipc_msg_grow_frame (msg, SIZE_MAX - 2));
    assert_int_equal (errno, ENOMEM);
    assert_int_equal (shmipc_msg_size (msg, 0), 3);
    assert_int_equal (shmipc_msg_content_size (msg), 3);
    assert_memory_equal (shmipc_msg_data (msg, 0), "abc", 3);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_detach_hands_over_the_buffer_and_leaves_an_empty_frame (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_addmem (msg, "one", 3), 0);
    assert_int_equal (shmipc_msg_addmem (msg, "second", 6), 0);
    assert_int_equal (shmipc_msg_addmem (msg, NULL, 0), 0);
    const void *inside = shmipc_msg_data (msg, 1);
    char *taken = (char *) shmipc_msg_detach (msg, 1);
    assert_ptr_equal (taken, inside);
    assert_memory_equal (taken, "second", 6);
    assert_int_equal (shmipc_msg_frames (msg), 3);
    assert_null (shmipc_msg_data (msg, 1));
    assert_int_equal (shmipc_msg_size (msg, 1), 0);
    assert_int_equal (shmipc_msg_content_size (msg), 3);
    //  Ours now: the message no longer touches it
    memset (taken, 0, 6);
    free (taken);
    assert_null (shmipc_msg_detach (msg, 1));
    assert_null (shmipc_msg_detach (msg, 2));
    assert_int_equal (shmipc_msg_content_size (msg), 3);
    //  The slot is usable again, after a reset
    shmipc_msg_reset (msg);
    assert_int_equal (shmipc_msg_addmem (msg, "x", 1), 0);
    assert_int_equal (shmipc_msg_addmem (msg, "again", 5), 0);
    assert_memory_equal (shmipc_msg_data (msg, 1), "again", 5);
    //  A detached last frame can grow from nothing, even by nothing
    free (shmipc_msg_detach (msg, 1));
    assert_non_null (shmipc_msg_grow_frame (msg, 0));
    assert_int_equal (shmipc_msg_size (msg, 1), 0);
    assert_null (shmipc_msg_data (msg, 1));
    char *tail = (char *) shmipc_msg_grow_frame (msg, 4);
    assert_non_null (tail);
    memcpy (tail, "more", 4);
    assert_memory_equal (shmipc_msg_data (msg, 1), "more", 4);
    assert_int_equal (shmipc_msg_content_size (msg), 5);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_reset_keeps_buffers_for_reuse (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    const void *buffers [10];
    for (size_t index = 0; index < 10; index++) {
        assert_non_null (shmipc_msg_add_frame (msg, 1000));
        buffers [index] = shmipc_msg_data (msg, index);
    }
    long rounds = tu_scaled (1000, 10);
    for (long round = 0; round < rounds; round++) {
        shmipc_msg_reset (msg);
        assert_int_equal (shmipc_msg_frames (msg), 0);
        assert_int_equal (shmipc_msg_content_size (msg), 0);
        //  Frames no bigger than before land in the same buffers
        for (size_t index = 0; index < 10; index++) {
            uint8_t bytes [1000];
            size_t size = 1 + (size_t) (round * 31 + (long) index * 7) % 1000;
            tu_fill (bytes, size, (uint64_t) round);
            if (index % 2)
                assert_int_equal (shmipc_msg_addmem (msg, bytes, size), 0);
            else
                memcpy (shmipc_msg_add_frame (msg, size), bytes, size);
            assert_ptr_equal (shmipc_msg_data (msg, index), buffers [index]);
            assert_true (tu_check (shmipc_msg_data (msg, index), size, (uint64_t) round));
        }
        assert_int_equal (shmipc_msg_frames (msg), 10);
    }
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_add_frame_past_frames_max_gives_e2big (void **state)
{
    if (tu_under_valgrind ()) {
        //  Its arena grows for good under a million frames, which the
        //  baseline would count as leaked mappings
        print_message ("under valgrind: frame limit test skipped\n");
        skip ();
    }
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    for (size_t index = 0; index < SHMIPC_FRAMES_MAX; index++)
        assert_int_equal (shmipc_msg_addmem (msg, NULL, 0), 0);
    assert_int_equal (shmipc_msg_addmem (msg, "z", 1), -1);
    assert_int_equal (errno, E2BIG);
    errno = 0;
    assert_null (shmipc_msg_add_frame (msg, 0));
    assert_int_equal (errno, E2BIG);
    assert_int_equal (shmipc_msg_frames (msg), SHMIPC_FRAMES_MAX);
    assert_int_equal (shmipc_msg_content_size (msg), 0);
    //  Growing the last one is still allowed: it adds no frame
    assert_non_null (shmipc_msg_grow_frame (msg, 2));
    assert_int_equal (shmipc_msg_content_size (msg), 2);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_msg_swap_exchanges_whole_messages (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *one = shmipc_msg_new ();
    shmipc_msg_t *two = shmipc_msg_new ();
    assert_non_null (one);
    assert_non_null (two);
    assert_int_equal (shmipc_msg_addmem (one, "a", 1), 0);
    assert_int_equal (shmipc_msg_addmem (two, "bb", 2), 0);
    assert_int_equal (shmipc_msg_addmem (two, "ccc", 3), 0);
    const void *held = shmipc_msg_data (two, 1);
    shmipc__msg_swap (one, two);
    assert_int_equal (shmipc_msg_frames (one), 2);
    assert_int_equal (shmipc_msg_content_size (one), 5);
    assert_ptr_equal (shmipc_msg_data (one, 1), held);
    assert_memory_equal (shmipc_msg_data (one, 0), "bb", 2);
    assert_int_equal (shmipc_msg_frames (two), 1);
    assert_int_equal (shmipc_msg_content_size (two), 1);
    assert_memory_equal (shmipc_msg_data (two, 0), "a", 1);
    shmipc_msg_destroy (&one);
    shmipc_msg_destroy (&two);
    tu_assert_baseline (baseline);
}

//  The randomized test's picture of a message: each frame's bytes.
#define S_MODEL_FRAMES 40
typedef struct {
    uint8_t *data [S_MODEL_FRAMES];
    size_t size [S_MODEL_FRAMES];
    size_t count;
} s_model_t;

static void
s_model_check (shmipc_msg_t *msg, s_model_t *model)
{
    assert_int_equal (shmipc_msg_frames (msg), model->count);
    size_t total = 0;
    for (size_t index = 0; index < model->count; index++) {
        assert_int_equal (shmipc_msg_size (msg, index), model->size [index]);
        if (model->size [index])
            assert_memory_equal (shmipc_msg_data (msg, index), model->data [index],
                                 model->size [index]);
        else
            assert_null (shmipc_msg_data (msg, index));
        total += model->size [index];
    }
    assert_int_equal (shmipc_msg_content_size (msg), total);
}

static void
test_msg_content_size_stays_exact_under_random_operations (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    s_model_t model = { .count = 0 };
    for (size_t index = 0; index < S_MODEL_FRAMES; index++) {
        model.data [index] = (uint8_t *) malloc (4096);
        assert_non_null (model.data [index]);
    }
    uint64_t random = 88172645463325252ULL;
    long rounds = tu_scaled (100000, 2000);
    for (long round = 0; round < rounds; round++) {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        size_t size = (size_t) (random >> 20) % 1024;
        if (random % 7 == 0)
            size = 0;
        switch ((random >> 8) % 10) {
            case 0: case 1: case 2:
                if (model.count == S_MODEL_FRAMES)
                    break;
                tu_fill (model.data [model.count], size, (uint64_t) round);
                assert_int_equal (shmipc_msg_addmem (msg, model.data [model.count],
                                                     size), 0);
                model.size [model.count++] = size;
                break;
            case 3: case 4: {
                if (model.count == S_MODEL_FRAMES)
                    break;
                uint8_t *at = (uint8_t *) shmipc_msg_add_frame (msg, size);
                assert_non_null (at);
                tu_fill (model.data [model.count], size, (uint64_t) round);
                memcpy (at, model.data [model.count], size);
                model.size [model.count++] = size;
                break;
            }
            case 5: case 6: {
                if (model.count == 0) {
                    assert_null (shmipc_msg_grow_frame (msg, size));
                    assert_int_equal (errno, EINVAL);
                    break;
                }
                size_t last = model.count - 1;
                if (model.size [last] + size > 4096)
                    size = 4096 - model.size [last];
                uint8_t *at = (uint8_t *) shmipc_msg_grow_frame (msg, size);
                assert_non_null (at);
                tu_fill (model.data [last] + model.size [last], size, (uint64_t) round);
                memcpy (at, model.data [last] + model.size [last], size);
                model.size [last] += size;
                break;
            }
            case 7: case 8: {
                if (model.count == 0)
                    break;
                size_t index = (size_t) (random >> 32) % model.count;
                uint8_t *taken = (uint8_t *) shmipc_msg_detach (msg, index);
                if (model.size [index] == 0)
                    assert_null (taken);
                else {
                    assert_non_null (taken);
                    assert_memory_equal (taken, model.data [index], model.size [index]);
                    free (taken);
                }
                model.size [index] = 0;
                break;
            }
            default:
                shmipc_msg_reset (msg);
                model.count = 0;
        }
        s_model_check (msg, &model);
    }
    for (size_t index = 0; index < S_MODEL_FRAMES; index++)
        free (model.data [index]);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_msg_new_message_is_empty),
        cmocka_unit_test (test_msg_addmem_appends_copies),
        cmocka_unit_test (test_msg_add_frame_returns_the_frame_buffer),
        cmocka_unit_test (test_msg_empty_frames_have_null_data_and_zero_size),
        cmocka_unit_test (test_msg_grow_frame_extends_the_last_frame),
        cmocka_unit_test (test_msg_grow_without_a_frame_gives_einval),
        cmocka_unit_test (test_msg_grow_past_size_max_gives_enomem),
        cmocka_unit_test (test_msg_detach_hands_over_the_buffer_and_leaves_an_empty_frame),
        cmocka_unit_test (test_msg_reset_keeps_buffers_for_reuse),
        cmocka_unit_test (test_msg_add_frame_past_frames_max_gives_e2big),
        cmocka_unit_test (test_msg_swap_exchanges_whole_messages),
        cmocka_unit_test (test_msg_content_size_stays_exact_under_random_operations),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
