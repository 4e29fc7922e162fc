/*  =========================================================================
    mtserver - multithreaded server: zmq_proxy between a ROUTER for the
    clients (hwclient) on an absolute shm:// path and a DEALER on inproc://
    for a pool of REP worker threads. A monitor thread on the proxy's
    capture socket counts the replies and stops the proxy through its
    control socket once all have passed; terminating the context then ends
    the workers (ETERM), as in the Guide.

    Usage: mtserver [REQUESTS [ENDPOINT [WORKERS]]]
           (default 30, shm:///tmp/guide-mtserver.shm, 4)
    =========================================================================
*/

#include "guide.h"
#include <pthread.h>

static int s_requests;

static void *
s_worker_routine (void *context)
{
    void *receiver = zmq_socket (context, ZMQ_REP);
    s_check (zmq_connect (receiver, "inproc://workers"));
    while (true) {
        char *request = s_recv (receiver);
        if (!request) {
            if (errno == ETERM)
                break;
            s_fail ("worker receive");
        }
        if (strncmp (request, "Hello ", 6))
            s_fail ("request '%s'", request);
        char reply [256];
        snprintf (reply, sizeof reply, "World %s", request + 6);
        free (request);
        s_sleep (1);            //  Do some 'work'
        if (s_send (receiver, reply) == -1 && errno != ETERM)
            s_fail ("worker send");
    }
    zmq_close (receiver);
    return NULL;
}

//  The proxy handles one message at a time and reads its control socket
//  only between messages: once the monitor has seen the last reply, the
//  TERMINATE it sends stops the proxy after that reply is on its way
static void *
s_monitor (void *context)
{
    void *capture = zmq_socket (context, ZMQ_PULL);
    s_check (zmq_connect (capture, "inproc://capture"));
    s_set_int (capture, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    void *control = zmq_socket (context, ZMQ_PUSH);
    s_check (zmq_connect (control, "inproc://control"));

    int replies = 0;
    while (replies < s_requests) {
        char *frame = s_recv_must (capture, "captured frame");
        if (replies == 0)
            s_shm_note ();      //  a client is connected now
        if (strncmp (frame, "World ", 6) == 0)
            replies++;
        free (frame);
    }
    s_proxy_stop (control, capture);
    zmq_close (capture);
    zmq_close (control);
    return NULL;
}

int
main (int argc, char *argv [])
{
    s_requests = argc > 1? atoi (argv [1]): 30;
    const char *endpoint = argc > 2? argv [2]: "shm:///tmp/guide-mtserver.shm";
    int nbr_workers = argc > 3? atoi (argv [3]): 4;
    assert (nbr_workers <= 16);

    void *context = zmq_ctx_new ();
    //  Was "tcp://*:5555"
    void *clients = zmq_socket (context, ZMQ_ROUTER);
    s_check (zmq_bind (clients, endpoint));
    void *workers = zmq_socket (context, ZMQ_DEALER);
    s_check (zmq_bind (workers, "inproc://workers"));
    void *capture = zmq_socket (context, ZMQ_PUSH);
    s_check (zmq_bind (capture, "inproc://capture"));
    void *control = zmq_socket (context, ZMQ_PULL);
    s_check (zmq_bind (control, "inproc://control"));

    pthread_t threads [16], monitor;
    for (int index = 0; index < nbr_workers; index++)
        if (pthread_create (&threads [index], NULL, s_worker_routine, context))
            s_fail ("pthread_create");
    if (pthread_create (&monitor, NULL, s_monitor, context))
        s_fail ("pthread_create");

    //  Connect work threads to client threads via a queue proxy
    s_check (zmq_proxy_steerable (clients, workers, capture, control));
    s_check (s_send (capture, "END"));  //  after whatever the proxy captured
    pthread_join (monitor, NULL);
    s_say ("served %d requests with %d worker threads", s_requests, nbr_workers);
    s_shm_report ();

    zmq_close (clients);
    zmq_close (workers);
    zmq_close (capture);
    zmq_close (control);
    zmq_ctx_term (context);
    for (int index = 0; index < nbr_workers; index++)
        pthread_join (threads [index], NULL);
    return 0;
}
