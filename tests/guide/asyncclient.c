/*  =========================================================================
    asyncclient - asynchronous client: a DEALER socket with its own routing
    id sends requests without waiting and gathers replies as they come
    (one to three per request, depending on the request's number). It
    checks that every reply is its own, that each request's replies come in
    order, and that none is missing.

    Usage: asyncclient [REQUESTS]     (default 20)
    =========================================================================
*/

#include "guide.h"

#define MAX_REQUESTS 1000

int
main (int argc, char *argv [])
{
    int requests = argc > 1? atoi (argv [1]): 20;
    assert (requests <= MAX_REQUESTS);

    void *context = zmq_ctx_new ();
    void *client = zmq_socket (context, ZMQ_DEALER);
    char identity [32];
    snprintf (identity, sizeof identity, "client-%d", (int) getpid ());
    s_check (zmq_setsockopt (client, ZMQ_ROUTING_ID, identity, strlen (identity)));
    s_check (zmq_connect (client, "shm://async.shm"));

    static int got [MAX_REQUESTS];       //  replies seen per request
    int sent = 0;
    long replies = 0, expected = 0;
    for (int seq = 0; seq < requests; seq++)
        expected += seq % 3 + 1;
    int64_t deadline = s_clock () + GUIDE_PATIENCE_MS;

    while (replies < expected) {
        //  A request every 5 msecs while replies keep coming in between
        zmq_pollitem_t items [] = { { client, 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll (items, 1, sent < requests? 5: 100) == -1)
            s_fail ("zmq_poll");
        while (items [0].revents & ZMQ_POLLIN) {
            char *reply = s_recv_nowait (client);
            if (!reply)
                break;
            if (replies == 0)
                s_shm_note ();
            char who [64];
            int seq, reply_nbr, nbr_replies;
            if (sscanf (reply, "REPLY %63s %d %d/%d",
                        who, &seq, &reply_nbr, &nbr_replies) != 4
            ||  strcmp (who, identity)
            ||  seq < 0 || seq >= sent
            ||  nbr_replies != seq % 3 + 1
            ||  reply_nbr != got [seq] + 1)
                s_fail ("reply '%s' (%d replies seen for it)",
                        reply, seq >= 0 && seq < sent? got [seq]: -1);
            got [seq]++;
            free (reply);
            replies++;
        }
        if (sent < requests) {
            char request [64];
            snprintf (request, sizeof request, "REQ %s %d", identity, sent++);
            s_check (s_send (client, request));
        }
        if (s_clock () > deadline)
            s_fail ("%ld replies of %ld", replies, expected);
    }
    s_say ("%s: %d requests, %ld replies, all right", identity, requests, replies);
    s_shm_report ();
    zmq_close (client);
    zmq_ctx_term (context);
    return 0;
}
