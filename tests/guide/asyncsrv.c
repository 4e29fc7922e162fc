/*  =========================================================================
    asyncsrv - asynchronous client/server: a ROUTER frontend on shm://
    passes requests to a DEALER backend on inproc://, where worker threads
    (DEALER) answer each request with one to three replies. The main thread
    shuttles messages with zmq_poll, counts the replies owed, and once all
    have gone out terminates the context, which ends the workers (ETERM).

    Usage: asyncsrv [REQUESTS [WORKERS]]  (default 60, 4)
    =========================================================================
*/

#include "guide.h"
#include <pthread.h>

//  Request "REQ <client> <seq>" gets (seq % 3) + 1 replies
//  "REPLY <client> <seq> <k>/<n>"
static void *
s_server_worker (void *context)
{
    void *worker = zmq_socket (context, ZMQ_DEALER);
    s_check (zmq_connect (worker, "inproc://backend"));

    while (true) {
        //  [identity][request] from the backend DEALER
        zmq_msg_t identity, request;
        zmq_msg_init (&identity);
        zmq_msg_init (&request);
        if (zmq_msg_recv (&identity, worker, 0) == -1
        ||  zmq_msg_recv (&request, worker, 0) == -1) {
            zmq_msg_close (&identity);
            zmq_msg_close (&request);
            if (errno == ETERM)
                break;          //  the context ends: so do we
            s_fail ("worker receive");
        }
        char text [128], client [64];
        int seq;
        size_t size = zmq_msg_size (&request);
        if (size >= sizeof text)
            s_fail ("request of %zu bytes", size);
        memcpy (text, zmq_msg_data (&request), size);
        text [size] = 0;
        if (sscanf (text, "REQ %63s %d", client, &seq) != 2)
            s_fail ("request '%s'", text);
        int replies = seq % 3 + 1;
        for (int reply = 1; reply <= replies; reply++) {
            zmq_msg_t copy;
            zmq_msg_init (&copy);
            zmq_msg_copy (&copy, &identity);
            s_check (zmq_msg_send (&copy, worker, ZMQ_SNDMORE));
            char body [160];
            snprintf (body, sizeof body, "REPLY %s %d %d/%d", client, seq, reply, replies);
            s_check (s_send (worker, body));
            //  Some work between replies, as a real server would do
            s_sleep (randof (2));
        }
        zmq_msg_close (&identity);
        zmq_msg_close (&request);
    }
    zmq_close (worker);
    return NULL;
}

//  Move one whole message from socket to socket; returns its last frame's
//  first bytes in text (for counting)
static void
s_forward (void *from, void *to, char *text, size_t text_size)
{
    while (true) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        s_check (zmq_msg_recv (&frame, from, 0));
        bool more = zmq_msg_more (&frame);
        size_t size = zmq_msg_size (&frame);
        if (size >= text_size)
            size = text_size - 1;
        memcpy (text, zmq_msg_data (&frame), size);
        text [size] = 0;
        s_check (zmq_msg_send (&frame, to, more? ZMQ_SNDMORE: 0));
        if (!more)
            break;
    }
}

int
main (int argc, char *argv [])
{
    int requests = argc > 1? atoi (argv [1]): 60;
    int nbr_workers = argc > 2? atoi (argv [2]): 4;
    srandom ((unsigned) getpid ());

    void *context = zmq_ctx_new ();
    //  Was "tcp://*:5570"
    void *frontend = zmq_socket (context, ZMQ_ROUTER);
    s_check (zmq_bind (frontend, "shm://async.shm"));
    void *backend = zmq_socket (context, ZMQ_DEALER);
    s_check (zmq_bind (backend, "inproc://backend"));

    pthread_t workers [16];
    assert (nbr_workers <= 16);
    for (int index = 0; index < nbr_workers; index++)
        if (pthread_create (&workers [index], NULL, s_server_worker, context))
            s_fail ("pthread_create");

    int received = 0;
    long owed = 0, sent = 0;
    while (received < requests || sent < owed) {
        zmq_pollitem_t items [] = {
            { frontend, 0, ZMQ_POLLIN, 0 },
            { backend,  0, ZMQ_POLLIN, 0 }
        };
        int rc = zmq_poll (items, 2, GUIDE_PATIENCE_MS);
        if (rc == -1)
            s_fail ("zmq_poll");
        if (rc == 0)
            s_fail ("stuck: %d requests of %d, %ld replies of %ld",
                    received, requests, sent, owed);
        char text [128];
        if (items [0].revents & ZMQ_POLLIN) {
            s_forward (frontend, backend, text, sizeof text);
            if (received == 0)
                s_shm_note ();
            char client [64];
            int seq;
            if (sscanf (text, "REQ %63s %d", client, &seq) != 2)
                s_fail ("request '%s'", text);
            owed += seq % 3 + 1;
            received++;
        }
        if (items [1].revents & ZMQ_POLLIN) {
            s_forward (backend, frontend, text, sizeof text);
            sent++;
        }
    }
    s_say ("%d requests, %ld replies", received, sent);
    s_shm_report ();
    //  Default linger: closing the frontend waits for the replies to leave.
    //  Terminating the context then ends the workers' blocking receives
    zmq_close (frontend);
    zmq_close (backend);
    zmq_ctx_term (context);
    for (int index = 0; index < nbr_workers; index++)
        pthread_join (workers [index], NULL);
    return 0;
}
