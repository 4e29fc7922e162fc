/*  fakezmq - libshmipc-fakezmq.so: the private libzmq of swap_foreign's
    extension (see fakezmq.h). Linked by nothing but that extension.
*/
#include <zmq.h>
#include <errno.h>
#include <string.h>
#include "fakezmq.h"

int fakezmq_calls = 0;
char fakezmq_context [64];
char fakezmq_socket [64];

void *zmq_ctx_new (void) { fakezmq_calls++; return fakezmq_context; }

void *
zmq_socket (void *context, int type)
{
    fakezmq_calls++;
    return context == fakezmq_context ? fakezmq_socket : NULL;
}

//  The calls on a socket or a context: 0 for ours, EFAULT for anything else
static int
s_answer (void *object, void *ours)
{
    fakezmq_calls++;
    if (object == ours)
        return 0;
    errno = EFAULT;
    return -1;
}

int zmq_bind (void *socket, const char *endpoint) { return s_answer (socket, fakezmq_socket); }
int zmq_connect (void *socket, const char *endpoint) { return s_answer (socket, fakezmq_socket); }
int zmq_unbind (void *socket, const char *endpoint) { return s_answer (socket, fakezmq_socket); }
int zmq_disconnect (void *socket, const char *endpoint) { return s_answer (socket, fakezmq_socket); }
int zmq_close (void *socket) { return s_answer (socket, fakezmq_socket); }
int zmq_ctx_term (void *context) { return s_answer (context, fakezmq_context); }
int zmq_ctx_shutdown (void *context) { return s_answer (context, fakezmq_context); }
int zmq_ctx_destroy (void *context) { return s_answer (context, fakezmq_context); }
int zmq_term (void *context) { return s_answer (context, fakezmq_context); }

int
zmq_getsockopt (void *socket, int option, void *value, size_t *size)
{
    if (s_answer (socket, fakezmq_socket))
        return -1;
    const char *answer = "fake://last";
    if (option != ZMQ_LAST_ENDPOINT || *size < strlen (answer) + 1) {
        errno = EINVAL;
        return -1;
    }
    memcpy (value, answer, strlen (answer) + 1);
    *size = strlen (answer) + 1;
    return 0;
}
