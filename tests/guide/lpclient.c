/*  =========================================================================
    lpclient - Lazy Pirate client: reliable request-reply from the client
    side. Each request waits a short time for its reply; when none comes,
    the client closes its REQ socket (linger 0), opens a new one, and sends
    the request again, a few times before it gives up. It may start before
    the server exists.

    Usage: lpclient [REQUESTS [ENDPOINT]]
           (default 10, shm://@guide-lazy-pirate)
    =========================================================================
*/

#include "guide.h"

#define REQUEST_TIMEOUT     400     //  msecs: the server overloads for longer
#define REQUEST_RETRIES     6       //  before we abandon

static void *
s_client_socket (void *context, const char *endpoint)
{
    void *client = zmq_socket (context, ZMQ_REQ);
    assert (client);
    s_set_int (client, ZMQ_LINGER, 0);
    s_check (zmq_connect (client, endpoint));
    return client;
}

int
main (int argc, char *argv [])
{
    int requests = argc > 1? atoi (argv [1]): 10;
    const char *endpoint = argc > 2? argv [2]: "shm://@guide-lazy-pirate";

    void *context = zmq_ctx_new ();
    void *client = s_client_socket (context, endpoint);
    int retries = 0;

    for (int sequence = 1; sequence <= requests; sequence++) {
        char request [16];
        snprintf (request, sizeof request, "%d", sequence);
        s_check (s_send (client, request));

        int retries_left = REQUEST_RETRIES;
        while (true) {
            zmq_pollitem_t items [] = { { client, 0, ZMQ_POLLIN, 0 } };
            if (zmq_poll (items, 1, REQUEST_TIMEOUT) == -1)
                s_fail ("zmq_poll");
            if (items [0].revents & ZMQ_POLLIN) {
                //  A REQ socket hears only the reply to what it sent
                char *reply = s_recv_must (client, "reply");
                s_shm_note ();
                if (strcmp (reply, request))
                    s_fail ("sent '%s', got '%s'", request, reply);
                free (reply);
                break;
            }
            if (--retries_left == 0)
                s_fail ("server seems to be offline, abandoning request %d", sequence);
            //  No reply: this socket is stuck waiting for one, so drop it
            s_say ("no response to %d, retrying", sequence);
            retries++;
            zmq_close (client);
            client = s_client_socket (context, endpoint);
            s_check (s_send (client, request));
        }
    }
    s_say ("%d replies, retries: %d", requests, retries);
    s_shm_report ();
    zmq_close (client);
    zmq_ctx_term (context);
    return 0;
}
