/*  =========================================================================
    pairchain - a signalling chain of PAIR sockets, across processes over
    shm:// and, inside each middle process, between two threads over
    inproc:// (the Guide's multithreaded relay, stretched over processes).

    The first process sends numbered tokens down the chain, up to WINDOW in
    flight; each middle stage's upstream thread adds its name to the token
    and hands it to the main thread, which passes it down; the last stage
    answers with an ACK that travels back the same way. The first checks
    that the ACKs come back in order with the same path every time, then
    sends END down the chain and every stage stops.

    Usage: pairchain NAME UP DOWN [ROUNDS]
           UP: the endpoint to connect upstream, "-" for the first stage;
           DOWN: the endpoint to bind downstream, "-" for the last stage;
           ROUNDS: tokens the first stage sends (default 200)
    =========================================================================
*/

#include "guide.h"
#include <pthread.h>

#define WINDOW  10

static const char *s_name;

//  Wait for one message on socket and return it, or fail
static char *
s_wait (void *socket, const char *what)
{
    zmq_pollitem_t items [] = { { socket, 0, ZMQ_POLLIN, 0 } };
    if (zmq_poll (items, 1, GUIDE_PATIENCE_MS) != 1)
        s_fail ("no %s", what);
    return s_recv_must (socket, what);
}

//  First stage: sends the tokens, checks the ACKs
static void
s_first (void *context, const char *down, int rounds)
{
    void *socket = zmq_socket (context, ZMQ_PAIR);
    s_check (zmq_bind (socket, down));

    int sent = 0, acked = 0;
    char path [256] = "";
    while (acked < rounds) {
        if (sent < rounds && sent - acked < WINDOW) {
            char token [64];
            snprintf (token, sizeof token, "TOKEN %d %s", sent++, s_name);
            s_check (s_send (socket, token));
            continue;
        }
        char *ack = s_wait (socket, "ACK");
        if (acked == 0)
            s_shm_note ();
        int round, offset = 0;
        if (sscanf (ack, "ACK %d %n", &round, &offset) != 1 || offset == 0)
            s_fail ("message '%s'", ack);
        if (round != acked)
            s_fail ("ACK for round %d, expected %d (PAIR keeps order)", round, acked);
        if (acked == 0)
            snprintf (path, sizeof path, "%s", ack + offset);
        else
        if (strcmp (path, ack + offset))
            s_fail ("path '%s', before '%s'", ack + offset, path);
        free (ack);
        acked++;
    }
    s_check (s_send (socket, "END"));
    s_say ("%d rounds, path: %s", rounds, path);
    s_shm_report ();
    zmq_close (socket);             //  default linger: END gets out
}

//  Last stage: answers each token with an ACK carrying the whole path
static void
s_last (void *context, const char *up)
{
    void *socket = zmq_socket (context, ZMQ_PAIR);
    s_check (zmq_connect (socket, up));

    int rounds = 0;
    while (true) {
        char *token = s_wait (socket, "token");
        if (rounds == 0)
            s_shm_note ();
        if (strcmp (token, "END") == 0) {
            free (token);
            break;
        }
        int round, offset = 0;
        if (sscanf (token, "TOKEN %d %n", &round, &offset) != 1 || offset == 0
        ||  round != rounds)
            s_fail ("token '%s', expected round %d", token, rounds);
        char ack [256];
        snprintf (ack, sizeof ack, "ACK %d %s>%s", round, token + offset, s_name);
        free (token);
        s_check (s_send (socket, ack));
        rounds++;
    }
    s_say ("acknowledged %d rounds", rounds);
    s_shm_report ();
    zmq_close (socket);
}

//  A middle stage's upstream thread: tokens from upstream get our name and
//  go to the main thread; ACKs from the main thread go upstream
typedef struct {
    void *context;
    const char *up;
} s_upstream_args_t;

static void *
s_upstream (void *args_)
{
    s_upstream_args_t *args = args_;
    void *relay = zmq_socket (args->context, ZMQ_PAIR);
    s_check (zmq_connect (relay, "inproc://relay"));
    void *up = zmq_socket (args->context, ZMQ_PAIR);
    s_check (zmq_connect (up, args->up));

    bool ended = false;
    while (!ended) {
        zmq_pollitem_t items [] = {
            { up, 0, ZMQ_POLLIN, 0 },
            { relay, 0, ZMQ_POLLIN, 0 }
        };
        int rc = zmq_poll (items, 2, GUIDE_PATIENCE_MS);
        if (rc == -1 || rc == 0)
            s_fail ("upstream thread: nothing to relay");
        if (items [0].revents & ZMQ_POLLIN) {
            char *token = s_recv_must (up, "token");
            if (strcmp (token, "END") == 0) {
                s_check (s_send (relay, "END"));
                ended = true;
            }
            else {
                if (strncmp (token, "TOKEN ", 6))
                    s_fail ("from upstream: '%s'", token);
                char longer [256];
                snprintf (longer, sizeof longer, "%s>%s", token, s_name);
                s_check (s_send (relay, longer));
            }
            free (token);
        }
        if (items [1].revents & ZMQ_POLLIN) {
            char *ack = s_recv_must (relay, "ACK");
            s_check (s_send (up, ack));
            free (ack);
        }
    }
    zmq_close (up);
    zmq_close (relay);
    return NULL;
}

//  Middle stage: the main thread relays between its upstream thread and
//  the next process
static void
s_middle (void *context, const char *up_endpoint, const char *down_endpoint)
{
    //  Bind the inproc end before the thread connects to it
    void *relay = zmq_socket (context, ZMQ_PAIR);
    s_check (zmq_bind (relay, "inproc://relay"));
    void *down = zmq_socket (context, ZMQ_PAIR);
    s_check (zmq_bind (down, down_endpoint));
    s_upstream_args_t args = { context, up_endpoint };
    pthread_t thread;
    if (pthread_create (&thread, NULL, s_upstream, &args))
        s_fail ("pthread_create");

    int tokens = 0, acks = 0;
    bool ended = false;
    while (!ended) {
        zmq_pollitem_t items [] = {
            { relay, 0, ZMQ_POLLIN, 0 },
            { down, 0, ZMQ_POLLIN, 0 }
        };
        int rc = zmq_poll (items, 2, GUIDE_PATIENCE_MS);
        if (rc == -1 || rc == 0)
            s_fail ("main thread: nothing to relay");
        if (items [0].revents & ZMQ_POLLIN) {
            char *token = s_recv_must (relay, "token");
            s_check (s_send (down, token));
            if (strcmp (token, "END") == 0)
                ended = true;
            else
                tokens++;
            free (token);
        }
        if (!ended && (items [1].revents & ZMQ_POLLIN)) {
            char *ack = s_recv_must (down, "ACK");
            if (acks++ == 0)
                s_shm_note ();
            if (strncmp (ack, "ACK ", 4))
                s_fail ("from downstream: '%s'", ack);
            s_check (s_send (relay, ack));
            free (ack);
        }
    }
    pthread_join (thread, NULL);
    if (acks != tokens)
        s_fail ("%d tokens passed down, %d ACKs up", tokens, acks);
    s_say ("relayed %d tokens and %d ACKs", tokens, acks);
    s_shm_report ();
    zmq_close (down);
    zmq_close (relay);
}

int
main (int argc, char *argv [])
{
    if (argc < 4) {
        fprintf (stderr, "usage: pairchain NAME UP|- DOWN|- [ROUNDS]\n");
        return 2;
    }
    s_name = argv [1];
    const char *up = strcmp (argv [2], "-")? argv [2]: NULL;
    const char *down = strcmp (argv [3], "-")? argv [3]: NULL;
    int rounds = argc > 4? atoi (argv [4]): 200;

    void *context = zmq_ctx_new ();
    if (!up && down)
        s_first (context, down, rounds);
    else
    if (up && !down)
        s_last (context, up);
    else
    if (up && down)
        s_middle (context, up, down);
    else
        s_fail ("a stage needs UP or DOWN");
    zmq_ctx_term (context);
    return 0;
}
