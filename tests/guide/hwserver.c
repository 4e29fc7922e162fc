/*  =========================================================================
    hwserver - Hello World server: a REP socket bound to a relative shm://
    endpoint answers "Hello ..." with "World ...", then exits after the
    number of requests it was told to expect. It prints where it is bound
    (ZMQ_LAST_ENDPOINT): given the wildcard endpoint, shm:// then a star,
    that is a fresh path, as with ipc://.

    Usage: hwserver [REQUESTS [ENDPOINT]]   (default 30, shm://hello.shm)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    int requests = argc > 1? atoi (argv [1]): 30;
    //  Was "tcp://*:5555": relative, so each run's own directory holds it
    const char *endpoint = argc > 2? argv [2]: "shm://hello.shm";

    void *context = zmq_ctx_new ();
    void *responder = zmq_socket (context, ZMQ_REP);
    s_set_int (responder, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_bind (responder, endpoint));
    char bound [256];
    size_t size = sizeof bound;
    s_check (zmq_getsockopt (responder, ZMQ_LAST_ENDPOINT, bound, &size));
    s_say ("bound to %s", bound);

    for (int count = 0; count < requests; count++) {
        char *request = s_recv_must (responder, "request");
        if (count == 0)
            s_shm_note ();      //  a client is connected now
        if (strncmp (request, "Hello ", 6))
            s_fail ("request %d is '%s'", count, request);
        //  The reply carries the request's tail so the client can match it
        char reply [256];
        snprintf (reply, sizeof reply, "World %s", request + 6);
        free (request);
        s_check (s_send (responder, reply));
    }
    s_say ("answered %d requests", requests);
    s_shm_report ();
    zmq_close (responder);
    zmq_ctx_term (context);
    return 0;
}
