/*  =========================================================================
    hwclient - Hello World client: a REQ socket sends numbered "Hello"
    requests and checks that each reply is the "World" for that request.
    The request-reply broker and the multithreaded server use it too, as
    the Guide's do.

    Usage: hwclient [ENDPOINT [REQUESTS]]
           (default shm://hello.shm, relative to the working directory; 10)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    const char *endpoint = argc > 1? argv [1]: "shm://hello.shm";
    int requests = argc > 2? atoi (argv [2]): 10;

    void *context = zmq_ctx_new ();
    void *requester = zmq_socket (context, ZMQ_REQ);
    s_set_int (requester, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    //  The server may not be up yet: connect retries, as over ipc://
    s_check (zmq_connect (requester, endpoint));

    for (int count = 0; count < requests; count++) {
        char request [64], expected [64];
        snprintf (request, sizeof request, "Hello %d %d", (int) getpid (), count);
        snprintf (expected, sizeof expected, "World %d %d", (int) getpid (), count);
        s_check (s_send (requester, request));
        char *reply = s_recv_must (requester, "reply");
        if (count == 0)
            s_shm_note ();
        if (strcmp (reply, expected))
            s_fail ("sent '%s', got '%s'", request, reply);
        free (reply);
    }
    s_say ("%d replies, all right", requests);
    s_shm_report ();
    zmq_close (requester);
    zmq_ctx_term (context);
    return 0;
}
