/*  =========================================================================
    lbclient - load-balancing broker's client: a REQ socket with its own
    routing id sends numbered requests and checks each reply.

    Usage: lbclient [REQUESTS [FRONTEND]]
           (default 10, shm://@guide-lb-frontend)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    int requests = argc > 1? atoi (argv [1]): 10;
    const char *endpoint = argc > 2? argv [2]: "shm://@guide-lb-frontend";

    void *context = zmq_ctx_new ();
    void *client = zmq_socket (context, ZMQ_REQ);
    char identity [32];
    snprintf (identity, sizeof identity, "C-%d", (int) getpid ());
    s_check (zmq_setsockopt (client, ZMQ_ROUTING_ID, identity, strlen (identity)));
    s_set_int (client, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_connect (client, endpoint));

    for (int count = 0; count < requests; count++) {
        char request [64], expected [80];
        snprintf (request, sizeof request, "HELLO %s %d", identity, count);
        snprintf (expected, sizeof expected, "OK %s", request);
        s_check (s_send (client, request));
        char *reply = s_recv_must (client, "reply");
        if (count == 0)
            s_shm_note ();
        if (strcmp (reply, expected))
            s_fail ("sent '%s', got '%s'", request, reply);
        free (reply);
    }
    s_say ("%s: %d replies, all right", identity, requests);
    s_shm_report ();
    zmq_close (client);
    zmq_ctx_term (context);
    return 0;
}
