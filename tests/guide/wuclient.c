/*  =========================================================================
    wuclient - weather update client: a SUB socket subscribes to one zip
    code, collects updates until it has enough, checks that every one is
    for its zip code and well formed, prints the average temperature, then
    tells the server it is done over a REQ socket.

    Usage: wuclient [ZIPCODE [PUB_ENDPOINT [SYNC_ENDPOINT]]]
           (default 10001, shm://@guide-weather, shm://@guide-weather-sync)
    =========================================================================
*/

#include "guide.h"

#define UPDATES 50

int
main (int argc, char *argv [])
{
    const char *zipcode = argc > 1? argv [1]: "10001";
    const char *pub_endpoint = argc > 2? argv [2]: "shm://@guide-weather";
    const char *sync_endpoint = argc > 3? argv [3]: "shm://@guide-weather-sync";

    void *context = zmq_ctx_new ();
    void *subscriber = zmq_socket (context, ZMQ_SUB);
    s_set_int (subscriber, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_connect (subscriber, pub_endpoint));
    //  The filter is a prefix: "10001 " so that nothing else matches
    char filter [16];
    snprintf (filter, sizeof filter, "%s ", zipcode);
    s_check (zmq_setsockopt (subscriber, ZMQ_SUBSCRIBE, filter, strlen (filter)));

    long total_temp = 0;
    for (int count = 0; count < UPDATES; count++) {
        char *update = s_recv_must (subscriber, "weather update");
        if (count == 0)
            s_shm_note ();
        int zip, temperature, humidity;
        if (strncmp (update, filter, strlen (filter))
        ||  sscanf (update, "%d %d %d", &zip, &temperature, &humidity) != 3
        ||  zip != atoi (zipcode)
        ||  temperature < -80 || temperature > 134
        ||  humidity < 10 || humidity > 59)
            s_fail ("update '%s' for subscription '%s'", update, filter);
        free (update);
        total_temp += temperature;
    }
    s_say ("average temperature for zipcode '%s' was %dF",
           zipcode, (int) (total_temp / UPDATES));

    //  Tell the server, which stops when every subscriber has
    void *syncclient = zmq_socket (context, ZMQ_REQ);
    s_set_int (syncclient, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_connect (syncclient, sync_endpoint));
    char done [32];
    snprintf (done, sizeof done, "DONE %s", zipcode);
    s_check (s_send (syncclient, done));
    char *reply = s_recv_must (syncclient, "sync reply");
    if (strcmp (reply, "OK"))
        s_fail ("sync reply '%s'", reply);
    free (reply);

    s_shm_report ();
    zmq_close (subscriber);
    zmq_close (syncclient);
    zmq_ctx_term (context);
    return 0;
}
