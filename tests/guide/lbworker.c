/*  =========================================================================
    lbworker - load-balancing broker's worker: a REQ socket with its own
    routing id says READY, then answers each [client][""][request] the
    broker passes with [client][""]["OK " request], until the broker says
    END, which it answers with BYE.

    Usage: lbworker [BACKEND]         (default shm://@guide-lb-backend)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    const char *endpoint = argc > 1? argv [1]: "shm://@guide-lb-backend";

    void *context = zmq_ctx_new ();
    void *worker = zmq_socket (context, ZMQ_REQ);
    //  A printable identity, so the broker's report names its workers
    char identity [32];
    snprintf (identity, sizeof identity, "W-%d", (int) getpid ());
    s_check (zmq_setsockopt (worker, ZMQ_ROUTING_ID, identity, strlen (identity)));
    s_set_int (worker, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_connect (worker, endpoint));

    //  Tell the broker we're ready for work
    s_check (s_send (worker, "READY"));
    int served = 0;
    while (true) {
        char *address = s_recv_must (worker, "request or END");
        s_shm_note ();
        if (!s_more (worker)) {
            if (strcmp (address, "END"))
                s_fail ("one-frame message '%s'", address);
            free (address);
            s_check (s_send (worker, "BYE"));
            break;
        }
        char *empty = s_recv_must (worker, "delimiter");
        if (*empty || !s_more (worker))
            s_fail ("no empty delimiter after the client address");
        free (empty);
        char *request = s_recv_must (worker, "request");
        if (s_more (worker))
            s_fail ("request with too many frames");
        char reply [256];
        snprintf (reply, sizeof reply, "OK %s", request);
        free (request);
        s_check (s_sendmore (worker, address));
        s_check (s_sendmore (worker, ""));
        s_check (s_send (worker, reply));
        free (address);
        served++;
    }
    s_say ("%s served %d", identity, served);
    s_shm_report ();
    zmq_close (worker);
    zmq_ctx_term (context);
    return 0;
}
