/*  =========================================================================
    lbbroker - load-balancing broker: ROUTER to the clients, ROUTER to the
    workers. Workers (REQ) announce themselves with READY and are queued
    least-recently-used; each client request goes to the worker at the
    head of the queue, and the reply back to the client whose address it
    carries. Once it has passed the expected number of replies and heard
    from every worker, it sends each worker END and waits for its BYE.

    Usage: lbbroker [REQUESTS [WORKERS [FRONTEND [BACKEND]]]]
           (default 30, 3, shm://@guide-lb-frontend, shm://@guide-lb-backend)
    =========================================================================
*/

#include "guide.h"

#define MAX_WORKERS 64
#define ID_MAX      256

typedef struct {
    char id [ID_MAX];
    size_t size;
} s_identity_t;

//  Receive a frame into an identity; it must be followed by more frames
static void
s_recv_identity (void *socket, s_identity_t *identity)
{
    int size = zmq_recv (socket, identity->id, ID_MAX, 0);
    if (size == -1 || size > ID_MAX)
        s_fail ("identity frame");
    identity->size = (size_t) size;
    if (!s_more (socket))
        s_fail ("identity frame without a message after it");
}

//  The empty delimiter frame of a REQ envelope
static void
s_recv_delimiter (void *socket)
{
    char buffer [1];
    if (zmq_recv (socket, buffer, sizeof buffer, 0) != 0 || !s_more (socket))
        s_fail ("no empty delimiter frame");
}

static bool
s_same (s_identity_t *one, s_identity_t *other)
{
    return one->size == other->size && memcmp (one->id, other->id, one->size) == 0;
}

int
main (int argc, char *argv [])
{
    int requests = argc > 1? atoi (argv [1]): 30;
    int nbr_workers = argc > 2? atoi (argv [2]): 3;
    const char *frontend_endpoint = argc > 3? argv [3]: "shm://@guide-lb-frontend";
    const char *backend_endpoint = argc > 4? argv [4]: "shm://@guide-lb-backend";
    assert (nbr_workers <= MAX_WORKERS);

    void *context = zmq_ctx_new ();
    void *frontend = zmq_socket (context, ZMQ_ROUTER);
    void *backend = zmq_socket (context, ZMQ_ROUTER);
    //  A reply for a worker or client who is gone is an error, not silence
    s_set_int (frontend, ZMQ_ROUTER_MANDATORY, 1);
    s_set_int (backend, ZMQ_ROUTER_MANDATORY, 1);
    s_check (zmq_bind (frontend, frontend_endpoint));
    s_check (zmq_bind (backend, backend_endpoint));

    //  The queue of available workers, least recently used first, and
    //  every worker ever seen
    s_identity_t queue [MAX_WORKERS], known [MAX_WORKERS];
    int available = 0, nbr_known = 0;
    int replies = 0, forwarded = 0;
    int served [MAX_WORKERS] = { 0 };

    while (replies < requests || nbr_known < nbr_workers) {
        //  Poll the frontend only when a worker is free to take a request
        zmq_pollitem_t items [] = {
            { backend, 0, ZMQ_POLLIN, 0 },
            { frontend, 0, ZMQ_POLLIN, 0 }
        };
        int rc = zmq_poll (items, available? 2: 1, GUIDE_PATIENCE_MS);
        if (rc == -1)
            s_fail ("zmq_poll");
        if (rc == 0)
            s_fail ("stuck: %d replies of %d, %d workers of %d",
                    replies, requests, nbr_known, nbr_workers);

        if (items [0].revents & ZMQ_POLLIN) {
            //  [worker][""]["READY"] or [worker][""][client][""][reply]
            s_identity_t worker;
            s_recv_identity (backend, &worker);
            s_recv_delimiter (backend);
            s_shm_note ();
            int index;
            for (index = 0; index < available; index++)
                if (s_same (&queue [index], &worker))
                    s_fail ("worker %.*s was queued twice", (int) worker.size, worker.id);
            for (index = 0; index < nbr_known; index++)
                if (s_same (&known [index], &worker))
                    break;
            if (index == nbr_known) {
                if (nbr_known == MAX_WORKERS)
                    s_fail ("too many workers");
                known [nbr_known++] = worker;
            }
            queue [available++] = worker;

            //  The third frame is READY alone, or a client's address
            s_identity_t client;
            int size = zmq_recv (backend, client.id, ID_MAX, 0);
            if (size == -1 || size > ID_MAX)
                s_fail ("third frame from a worker");
            client.size = (size_t) size;
            if (!s_more (backend)) {
                if (client.size != 5 || memcmp (client.id, "READY", 5))
                    s_fail ("worker said '%.*s'", size, client.id);
                continue;       //  a new worker, queued and nothing to pass
            }
            s_recv_delimiter (backend);
            char *reply = s_recv_must (backend, "reply body");
            if (s_more (backend))
                s_fail ("reply with too many frames");
            //  Back to the client whose address the reply carries
            s_check (zmq_send (frontend, client.id, client.size, ZMQ_SNDMORE));
            s_check (s_sendmore (frontend, ""));
            s_check (s_send (frontend, reply));
            free (reply);
            served [index]++;
            replies++;
        }
        if (available > 0 && (items [1].revents & ZMQ_POLLIN)) {
            //  [client][""][request] goes to the least recently used worker
            s_identity_t client;
            s_recv_identity (frontend, &client);
            s_recv_delimiter (frontend);
            char *request = s_recv_must (frontend, "request body");
            s_identity_t worker = queue [0];
            memmove (queue, queue + 1, (--available) * sizeof (s_identity_t));
            s_check (zmq_send (backend, worker.id, worker.size, ZMQ_SNDMORE));
            s_check (s_sendmore (backend, ""));
            s_check (zmq_send (backend, client.id, client.size, ZMQ_SNDMORE));
            s_check (s_sendmore (backend, ""));
            s_check (s_send (backend, request));
            free (request);
            forwarded++;
        }
    }
    //  Every request has its reply, so every worker is waiting in the queue
    if (available != nbr_known || forwarded != requests)
        s_fail ("%d workers queued of %d, %d requests forwarded",
                available, nbr_known, forwarded);
    for (int index = 0; index < available; index++) {
        s_check (zmq_send (backend, queue [index].id, queue [index].size, ZMQ_SNDMORE));
        s_check (s_sendmore (backend, ""));
        s_check (s_send (backend, "END"));
    }
    //  A REQ worker answers END with BYE: we stay until each has, so that
    //  none is left talking to a broker that is gone
    s_set_int (backend, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    for (int count = 0; count < nbr_known; count++) {
        s_identity_t worker;
        s_recv_identity (backend, &worker);
        s_recv_delimiter (backend);
        char *bye = s_recv_must (backend, "BYE");
        if (strcmp (bye, "BYE") || s_more (backend))
            s_fail ("'%s' where BYE was due", bye);
        free (bye);
    }
    for (int index = 0; index < nbr_known; index++)
        s_say ("worker %.*s served %d", (int) known [index].size, known [index].id,
               served [index]);
    s_say ("balanced %d requests over %d workers", replies, nbr_known);
    s_shm_report ();
    zmq_close (frontend);
    zmq_close (backend);
    zmq_ctx_term (context);
    return 0;
}
