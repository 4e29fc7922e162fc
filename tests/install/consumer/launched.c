/*  launched - an unchanged libzmq program for the install check: it never
    links libshmipc, binds the shm:// wildcard, sends itself a message through the
    endpoint ZMQ_LAST_ENDPOINT reports, and prints where the preload
    library it runs with was loaded from. Works only under shmipc-run.
*/
#include <zmq.h>
#include <stdio.h>
#include <string.h>

int
main (void)
{
    void *context = zmq_ctx_new ();
    void *pull = zmq_socket (context, ZMQ_PULL);
    void *push = zmq_socket (context, ZMQ_PUSH);
    int timeout = 5000;
    zmq_setsockopt (pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char endpoint [256] = "";
    size_t size = sizeof endpoint;
    if (zmq_bind (pull, "shm://*")
    ||  zmq_getsockopt (pull, ZMQ_LAST_ENDPOINT, endpoint, &size)
    ||  strncmp (endpoint, "shm:///", 7) != 0
    ||  zmq_connect (push, endpoint)
    ||  zmq_send (push, "hello", 5, 0) != 5) {
        printf ("failed at %s: %s\n", endpoint, zmq_strerror (zmq_errno ()));
        return 1;
    }
    char buffer [8];
    int received = zmq_recv (pull, buffer, sizeof buffer, 0);
    //  The preload library's path, from our own mappings
    char line [512], library [512] = "";
    FILE *maps = fopen ("/proc/self/maps", "r");
    while (maps && fgets (line, sizeof line, maps))
        if (strstr (line, "libshmipc-preload.so") && sscanf (line, "%*s %*s %*s %*s %*s %511s", library) == 1)
            break;
    if (maps)
        fclose (maps);
    zmq_close (push);
    zmq_close (pull);
    zmq_ctx_term (context);
    printf ("received %d via %s\n", received, library);
    return received == 5 ? 0 : 1;
}
