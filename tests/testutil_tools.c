/*  =========================================================================
    testutil_tools - the plain-C test tools (testutil_tools.h)

    Owns nothing beyond the threads of one tu_warm_threads call.
    =========================================================================
*/

#include "testutil_tools.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void
tu_say (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vprintf (format, args);
    va_end (args);
    printf ("\n");
    fflush (stdout);
}

//  Where the warming threads meet: each arrives, then waits to be let go,
//  so that all of them run at once.
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;     //  Signalled at each arrival and at release
    int arrived;                //  Threads that have allocated
    int released;               //  1 once all may end
} s_gate_t;

//  A thread that allocates a little, then waits for all the others.
static void *
s_warm_thread (void *args)
{
    s_gate_t *gate = (s_gate_t *) args;
    //  Through a volatile pointer: an optimising compiler drops a plain
    //  free (malloc (n)), and the thread would then take no arena
    void *volatile block = malloc (100);
    free (block);
    pthread_mutex_lock (&gate->lock);
    gate->arrived++;
    pthread_cond_broadcast (&gate->changed);
    while (!gate->released)
        pthread_cond_wait (&gate->changed, &gate->lock);
    pthread_mutex_unlock (&gate->lock);
    return NULL;
}

int
tu_warm_threads (int count)
{
    pthread_t *threads = (pthread_t *) calloc ((size_t) count, sizeof *threads);
    if (!threads)
        return -1;
    s_gate_t gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
    int started = 0;
    while (started < count
    &&     pthread_create (&threads [started], NULL, s_warm_thread, &gate) == 0)
        started++;
    pthread_mutex_lock (&gate.lock);
    while (gate.arrived < started)
        pthread_cond_wait (&gate.changed, &gate.lock);
    gate.released = 1;
    pthread_cond_broadcast (&gate.changed);
    pthread_mutex_unlock (&gate.lock);
    for (int index = 0; index < started; index++)
        pthread_join (threads [index], NULL);
    free (threads);
    return started == count ? 0 : -1;
}
