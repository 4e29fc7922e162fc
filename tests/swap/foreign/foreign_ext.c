/*  foreign_ext - libshmipc-foreign-ext.so: an extension module linked with
    its own libzmq (libshmipc-fakezmq.so), loaded by swap_foreign with
    dlopen as Python loads pyzmq's. Under the launcher, its calls must
    still reach its own copy, untouched.
*/
#include <zmq.h>
#include <string.h>
#include "fakezmq.h"

int
foreign_ext_run (void)
{
    int before = fakezmq_calls;
    void *context = zmq_ctx_new ();
    void *socket = zmq_socket (context, ZMQ_PULL);
    if (socket != fakezmq_socket)
        return 1;
    if (zmq_bind (socket, "shm://foreign") || zmq_connect (socket, "shm://foreign")
    ||  zmq_unbind (socket, "shm://foreign") || zmq_disconnect (socket, "shm://foreign"))
        return 2;
    char last [64];
    size_t size = sizeof last;
    if (zmq_getsockopt (socket, ZMQ_LAST_ENDPOINT, last, &size) || strcmp (last, "fake://last"))
        return 3;
    if (zmq_close (socket) || zmq_ctx_shutdown (context) || zmq_ctx_term (context)
    ||  zmq_ctx_destroy (context) || zmq_term (context))
        return 4;
    return fakezmq_calls - before == 12 ? 0 : 5;
}
