/*  =========================================================================
    psenvsub - pub-sub envelope subscriber: subscribes to one key and
    checks that every message is [key][contents] with that key, that the
    contents count up from 0 without a gap (one publisher, so in order),
    and that END comes after the expected number. Then it unsubscribes,
    which lets the publisher go.

    Usage: psenvsub [KEY [MESSAGES [ENDPOINT]]]
           (default B, 100, shm://@guide-psenv)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    const char *key = argc > 1? argv [1]: "B";
    int messages = argc > 2? atoi (argv [2]): 100;
    const char *endpoint = argc > 3? argv [3]: "shm://@guide-psenv";

    void *context = zmq_ctx_new ();
    void *subscriber = zmq_socket (context, ZMQ_SUB);
    s_set_int (subscriber, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_connect (subscriber, endpoint));
    s_check (zmq_setsockopt (subscriber, ZMQ_SUBSCRIBE, key, strlen (key)));

    int count = 0;
    while (true) {
        char *address = s_recv_must (subscriber, "envelope");
        if (strcmp (address, key) || !s_more (subscriber))
            s_fail ("envelope '%s' (more: %d) under subscription '%s'",
                    address, s_more (subscriber), key);
        free (address);
        char *contents = s_recv_must (subscriber, "contents");
        if (s_more (subscriber))
            s_fail ("more than two frames");
        if (strcmp (contents, "END") == 0) {
            free (contents);
            break;
        }
        const char *number = strrchr (contents, ' ');
        if (!number || atoi (number + 1) != count)
            s_fail ("contents '%s', expected number %d", contents, count);
        free (contents);
        count++;
    }
    if (count != messages)
        s_fail ("%d messages before END, expected %d", count, messages);
    s_say ("[%s] %d messages in order, then END", key, count);
    //  The messages came through the socket's queue and may have left
    //  shared memory long ago; the publisher waits for our unsubscription,
    //  so our connection is up now
    s_shm_note ();
    s_shm_report ();
    s_check (zmq_setsockopt (subscriber, ZMQ_UNSUBSCRIBE, key, strlen (key)));
    zmq_close (subscriber);
    zmq_ctx_term (context);
    return 0;
}
