/*  =========================================================================
    rrworker - request-reply worker: a REP socket connected to the broker's
    DEALER answers "Hello ..." with "World ...". The broker deals requests
    round-robin and never says when it is done, so a worker stops when no
    request came for a while, and prints how many it served (the driver
    checks that the workers' counts add up).

    Usage: rrworker [IDLE_MSECS]      (default 3000)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    int idle_msecs = argc > 1? atoi (argv [1]): 3000;

    void *context = zmq_ctx_new ();
    void *responder = zmq_socket (context, ZMQ_REP);
    s_set_int (responder, ZMQ_RCVTIMEO, idle_msecs);
    s_check (zmq_connect (responder, "shm://backend.shm"));
    //  A worker that connects late may get no request at all: its proof
    //  is its connection to the broker
    s_shm_wait ();
    s_say ("connected");        //  the driver starts the clients after this

    int served = 0;
    int64_t deadline = s_clock () + GUIDE_PATIENCE_MS;
    while (true) {
        char *request = s_recv (responder);
        if (!request) {
            if (errno != EAGAIN)
                s_fail ("zmq_recv");
            //  Idle: done, unless the clients never came at all
            if (served > 0)
                break;
            if (s_clock () > deadline)
                s_fail ("no request came");
            continue;
        }
        s_shm_note ();
        if (strncmp (request, "Hello ", 6))
            s_fail ("request '%s'", request);
        char reply [256];
        snprintf (reply, sizeof reply, "World %s", request + 6);
        free (request);
        s_check (s_send (responder, reply));
        served++;
    }
    s_say ("served %d", served);
    s_shm_report ();
    zmq_close (responder);
    zmq_ctx_term (context);
    return 0;
}
