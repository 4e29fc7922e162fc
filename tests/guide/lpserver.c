/*  =========================================================================
    lpserver - Lazy Pirate server: a REP socket echoes each request, but
    "overloads" (sleeps longer than the client will wait) the first time it
    sees requests 3 and 7, so the client must give up on its socket and
    retry on a new one. It stops once it has answered the last request.

    Usage: lpserver [REQUESTS [ENDPOINT]]
           (default 10, shm://@guide-lazy-pirate)
    =========================================================================
*/

#include "guide.h"

#define OVERLOAD_MSECS  1000

int
main (int argc, char *argv [])
{
    int requests = argc > 1? atoi (argv [1]): 10;
    const char *endpoint = argc > 2? argv [2]: "shm://@guide-lazy-pirate";

    void *context = zmq_ctx_new ();
    void *server = zmq_socket (context, ZMQ_REP);
    s_set_int (server, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_bind (server, endpoint));

    bool overloaded [2] = { false, false };
    int received = 0, last = 0;
    while (last < requests) {
        char *request = s_recv_must (server, "request");
        s_shm_note ();
        received++;
        int sequence = atoi (request);
        if (sequence < 1 || sequence > requests)
            s_fail ("request '%s'", request);
        //  The retries of a request may come after it has been answered
        //  (they were sent on sockets the client has closed since), but
        //  never a request ahead of the next one
        if (sequence > last + 1)
            s_fail ("request %d after %d", sequence, last);
        if (sequence > last)
            last = sequence;
        if ((sequence == 3 && !overloaded [0]) || (sequence == 7 && !overloaded [1])) {
            overloaded [sequence == 7] = true;
            s_say ("simulating CPU overload on request %d", sequence);
            s_sleep (OVERLOAD_MSECS);
        }
        s_check (s_send (server, request));
        free (request);
    }
    s_say ("answered through request %d, %d requests received", last, received);
    s_shm_report ();
    //  Default linger: the last reply reaches the client before we go
    zmq_close (server);
    zmq_ctx_term (context);
    return 0;
}
