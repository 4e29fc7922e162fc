/*  =========================================================================
    wuserver - weather update server: a PUB socket publishes random
    "zipcode temperature humidity" updates. A REP socket beside it hears
    each subscriber say "DONE" when it has had enough, and the server stops
    once all of them have (a real one would run for ever).

    Usage: wuserver [SUBSCRIBERS [PUB_ENDPOINT [SYNC_ENDPOINT]]]
           (default 2, shm://@guide-weather, shm://@guide-weather-sync)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    int subscribers = argc > 1? atoi (argv [1]): 2;
    const char *pub_endpoint = argc > 2? argv [2]: "shm://@guide-weather";
    const char *sync_endpoint = argc > 3? argv [3]: "shm://@guide-weather-sync";
    srandom ((unsigned) getpid ());

    void *context = zmq_ctx_new ();
    void *publisher = zmq_socket (context, ZMQ_PUB);
    s_check (zmq_bind (publisher, pub_endpoint));
    void *syncservice = zmq_socket (context, ZMQ_REP);
    s_check (zmq_bind (syncservice, sync_endpoint));

    int done = 0;
    long updates = 0;
    int64_t deadline = s_clock () + GUIDE_PATIENCE_MS;
    while (done < subscribers) {
        //  A batch of updates: a hundred zip codes, so a subscriber's
        //  own comes about once in a hundred
        for (int batch = 0; batch < 100; batch++) {
            char update [64];
            snprintf (update, sizeof update, "%05d %d %d",
                      10000 + randof (100), randof (215) - 80, randof (50) + 10);
            s_check (s_send (publisher, update));
            updates++;
        }
        //  Then the subscribers who are done, without waiting for them
        char *message;
        while ((message = s_recv_nowait (syncservice))) {
            s_shm_note ();      //  that subscriber is still connected
            if (strncmp (message, "DONE ", 5))
                s_fail ("sync message '%s'", message);
            s_say ("subscriber %s", message + 5);
            free (message);
            s_check (s_send (syncservice, "OK"));
            done++;
        }
        if (s_clock () > deadline)
            s_fail ("only %d of %d subscribers done", done, subscribers);
        s_sleep (1);            //  a weather station, not a benchmark
    }
    s_say ("published %ld updates to %d subscribers", updates, subscribers);
    s_shm_report ();
    zmq_close (publisher);
    zmq_close (syncservice);
    zmq_ctx_term (context);
    return 0;
}
