/*  =========================================================================
    psenvpub - pub-sub envelopes: each message is two frames, a key (the
    "address" subscribers filter on) and the contents. An XPUB socket lets
    the publisher wait until the expected number of subscriptions has come
    in (no slow-joiner losses), then it publishes a numbered series under
    keys A and B and a final END under each, and waits for the subscribers
    to unsubscribe before it goes.

    Usage: psenvpub [SUBSCRIBERS [MESSAGES [ENDPOINT]]]
           (default 2, 100, shm://@guide-psenv)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    int subscribers = argc > 1? atoi (argv [1]): 2;
    int messages = argc > 2? atoi (argv [2]): 100;
    const char *endpoint = argc > 3? argv [3]: "shm://@guide-psenv";

    void *context = zmq_ctx_new ();
    void *publisher = zmq_socket (context, ZMQ_XPUB);
    //  Every subscription, even a second one for the same key
    s_set_int (publisher, ZMQ_XPUB_VERBOSE, 1);
    s_set_int (publisher, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_bind (publisher, endpoint));

    for (int count = 0; count < subscribers; count++) {
        char *subscription = s_recv_must (publisher, "subscription");
        s_shm_note ();
        //  \x01 then the key: one of ours
        if (subscription [0] != 1
        ||  (strcmp (subscription + 1, "A") && strcmp (subscription + 1, "B")))
            s_fail ("subscription message '%s'", subscription);
        s_say ("subscription to '%s'", subscription + 1);
        free (subscription);
    }
    for (int count = 0; count < messages; count++) {
        char contents [64];
        snprintf (contents, sizeof contents, "We don't want to see this %d", count);
        s_check (s_sendmore (publisher, "A"));
        s_check (s_send (publisher, contents));
        snprintf (contents, sizeof contents, "We would like to see this %d", count);
        s_check (s_sendmore (publisher, "B"));
        s_check (s_send (publisher, contents));
    }
    s_check (s_sendmore (publisher, "A"));
    s_check (s_send (publisher, "END"));
    s_check (s_sendmore (publisher, "B"));
    s_check (s_send (publisher, "END"));
    s_say ("published %d messages under each key", messages);
    //  Each subscriber unsubscribes when it has had END: \x00 then the key
    for (int count = 0; count < subscribers; count++) {
        char *unsubscription = s_recv_must (publisher, "unsubscription");
        if (unsubscription [0] != 0)
            s_fail ("message '%s' where an unsubscription was due", unsubscription);
        free (unsubscription);
    }
    s_shm_report ();
    //  Default linger: the series reaches the subscribers before we go
    zmq_close (publisher);
    zmq_ctx_term (context);
    return 0;
}
