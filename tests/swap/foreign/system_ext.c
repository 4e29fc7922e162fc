/*  system_ext - libshmipc-system-ext.so: an extension module linked with
    the system libzmq (as Debian's python3-zmq is), loaded by swap_foreign
    with dlopen: under the launcher its shm:// endpoints use shared memory.
*/
#include <zmq.h>
#include <stdio.h>
#include <string.h>

int system_ext_run (void);

//  True if this process maps a shmipc segment
static int
s_has_segment (void)
{
    FILE *maps = fopen ("/proc/self/maps", "r");
    char line [512];
    int found = 0;
    while (maps && !found && fgets (line, sizeof line, maps))
        found = strstr (line, "/memfd:shmipc:") != NULL;
    if (maps)
        fclose (maps);
    return found;
}

//  A round trip over shm://*; returns 0, or the step that failed
int
system_ext_run (void)
{
    void *context = zmq_ctx_new ();
    void *pull = zmq_socket (context, ZMQ_PULL);
    void *push = zmq_socket (context, ZMQ_PUSH);
    int timeout = 10000;
    zmq_setsockopt (pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char endpoint [256];
    size_t size = sizeof endpoint;
    if (zmq_bind (pull, "shm://*")
    ||  zmq_getsockopt (pull, ZMQ_LAST_ENDPOINT, endpoint, &size)
    ||  strncmp (endpoint, "shm:///", 7) != 0
    ||  zmq_connect (push, endpoint) || zmq_send (push, "hi", 2, 0) != 2)
        return 1;
    char buffer [8];
    if (zmq_recv (pull, buffer, sizeof buffer, 0) != 2)
        return 2;
    if (!s_has_segment ())
        return 3;
    zmq_close (push);
    zmq_close (pull);
    return zmq_ctx_term (context) ? 4 : 0;
}
