/*  =========================================================================
    real - libzmq's own entry points, behind the names libshmipc and its
    preload library define (interpose.c, preload.c)

    Owns nothing but the table of function pointers, filled once.
    =========================================================================
*/

#ifndef SHMIPC_REAL_H_INCLUDED
#define SHMIPC_REAL_H_INCLUDED

#include <stddef.h>

//  libzmq's functions that shm:// handling stands in front of.
typedef struct {
    void *(*socket) (void *context, int type);      //  zmq_socket
    int (*close) (void *socket);                    //  zmq_close
    int (*bind) (void *socket, const char *endpoint);       //  zmq_bind
    int (*connect) (void *socket, const char *endpoint);    //  zmq_connect
    int (*unbind) (void *socket, const char *endpoint);     //  zmq_unbind
    int (*disconnect) (void *socket, const char *endpoint); //  zmq_disconnect
    int (*getsockopt) (void *socket, int option, void *value, size_t *size);
                                                    //  zmq_getsockopt
    int (*ctx_term) (void *context);                //  zmq_ctx_term
    int (*ctx_shutdown) (void *context);            //  zmq_ctx_shutdown
    int (*ctx_destroy) (void *context);             //  zmq_ctx_destroy
    int (*term) (void *context);                    //  zmq_term
} shmipc__real_t;

//  Return libzmq's functions. They are looked up in libzmq itself (the
//  library that defines zmq_version), not by RTLD_NEXT: under the preload
//  library libzmq may come before libshmipc in the search order, and in a
//  Python program it is loaded late, by dlopen. Never NULL; a function not
//  found fails with ENOSYS.
const shmipc__real_t *
    shmipc__real (void);

//  Fill table with the functions of the libzmq that handle (from dlopen)
//  reaches, by their libzmq names; each one not found (or every one, if
//  handle is NULL) becomes a stand-in that fails with ENOSYS. Returns how
//  many were not found.
int
    shmipc__real_fill (shmipc__real_t *table, void *handle);

//  Return an int option of a libzmq socket, read with libzmq's own
//  getsockopt (0 if it cannot be read).
int
    shmipc__int_option (void *socket, int option);

#endif
