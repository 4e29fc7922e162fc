/*  =========================================================================
    rrbroker - request-reply broker: zmq_proxy between a ROUTER for the
    clients (hwclient) and a DEALER for the workers (rrworker). A monitor
    thread reads the proxy's capture socket, counts the replies going
    back, and stops the proxy through its control socket once it has seen
    the number it was told to expect.

    Usage: rrbroker [REQUESTS]        (default 30)
    =========================================================================
*/

#include "guide.h"
#include <pthread.h>

static int s_requests;

//  Counts what the proxy forwards: "Hello" requests one way, "World"
//  replies the other. The proxy reads its control socket only between
//  messages, so by the time it reads TERMINATE the last reply is queued
//  on the frontend, which the default linger then delivers
static void *
s_monitor (void *context)
{
    void *capture = zmq_socket (context, ZMQ_PAIR);
    s_check (zmq_connect (capture, "inproc://capture"));
    void *control = zmq_socket (context, ZMQ_PAIR);
    s_check (zmq_connect (control, "inproc://control"));
    s_set_int (capture, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);

    int requests = 0, replies = 0;
    while (replies < s_requests) {
        char *frame = s_recv_must (capture, "captured frame");
        if (requests == 0)
            s_shm_note ();      //  a client is connected now
        if (strncmp (frame, "Hello ", 6) == 0)
            requests++;
        else
        if (strncmp (frame, "World ", 6) == 0)
            replies++;
        free (frame);
    }
    if (requests != s_requests)
        s_fail ("%d requests passed for %d replies", requests, replies);
    s_proxy_stop (control, capture);
    zmq_close (capture);
    zmq_close (control);
    return NULL;
}

int
main (int argc, char *argv [])
{
    s_requests = argc > 1? atoi (argv [1]): 30;

    void *context = zmq_ctx_new ();
    //  Was "tcp://*:5559" and "tcp://*:5560"
    void *frontend = zmq_socket (context, ZMQ_ROUTER);
    s_check (zmq_bind (frontend, "shm://frontend.shm"));
    void *backend = zmq_socket (context, ZMQ_DEALER);
    s_check (zmq_bind (backend, "shm://backend.shm"));
    void *capture = zmq_socket (context, ZMQ_PAIR);
    s_check (zmq_bind (capture, "inproc://capture"));
    void *control = zmq_socket (context, ZMQ_PAIR);
    s_check (zmq_bind (control, "inproc://control"));

    pthread_t monitor;
    if (pthread_create (&monitor, NULL, s_monitor, context))
        s_fail ("pthread_create");
    //  Returns 0 once TERMINATE comes
    s_check (zmq_proxy_steerable (frontend, backend, capture, control));
    s_check (s_send (capture, "END"));  //  after whatever the proxy captured
    pthread_join (monitor, NULL);

    s_say ("brokered %d requests", s_requests);
    s_shm_report ();
    zmq_close (frontend);
    zmq_close (backend);
    zmq_close (capture);
    zmq_close (control);
    zmq_ctx_term (context);
    return 0;
}
