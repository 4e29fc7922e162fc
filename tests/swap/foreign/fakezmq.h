/*  fakezmq - a stand-in for a private copy of libzmq (as a pip wheel of
    pyzmq bundles one), for swap_foreign: the same names as libzmq's, each
    counting its calls and answering with sentinels, never touching the
    system libzmq.
*/
#ifndef FAKEZMQ_H_INCLUDED
#define FAKEZMQ_H_INCLUDED

//  Calls that reached this copy.
extern int fakezmq_calls;

//  Its one context and one socket: what it hands out.
extern char fakezmq_context [64];
extern char fakezmq_socket [64];

//  What the foreign extension runs (foreign_ext.c): a whole life of a
//  socket through its own libzmq. Returns 0 if every call reached that
//  copy and got its answers, else the step that went wrong.
int foreign_ext_run (void);

#endif
