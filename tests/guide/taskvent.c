/*  =========================================================================
    taskvent - task ventilator: a PUSH socket hands a batch of tasks (each
    a workload in msecs) to the workers, after telling the sink, over a
    second PUSH, how many tasks there are and what their workloads add up
    to, so the sink can check what comes back.

    Usage: taskvent [TASKS [WAIT_MSECS]]    (default 100, 500)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    int tasks = argc > 1? atoi (argv [1]): 100;
    int wait_msecs = argc > 2? atoi (argv [2]): 500;
    srandom ((unsigned) getpid ());

    void *context = zmq_ctx_new ();
    //  Was "tcp://*:5557" and "tcp://localhost:5558"
    void *sender = zmq_socket (context, ZMQ_PUSH);
    s_check (zmq_bind (sender, "shm://tasks.shm"));
    void *sink = zmq_socket (context, ZMQ_PUSH);
    s_check (zmq_connect (sink, "shm://results.shm"));

    //  The workloads first, so the batch message can carry their sum
    int *workload = malloc (tasks * sizeof (int));
    assert (workload);
    long total_msec = 0;
    for (int task_nbr = 0; task_nbr < tasks; task_nbr++) {
        workload [task_nbr] = randof (10) + 1;
        total_msec += workload [task_nbr];
    }
    char batch [64];
    snprintf (batch, sizeof batch, "BATCH %d %ld", tasks, total_msec);
    s_check (s_send (sink, batch));

    //  PUSH deals tasks round-robin among the workers connected at the
    //  time (waiting for a first one): give them a moment to (re)connect
    //  to our new endpoint, where the Guide waits for Enter
    s_sleep (wait_msecs);
    for (int task_nbr = 0; task_nbr < tasks; task_nbr++) {
        char task [32];
        snprintf (task, sizeof task, "%d %d", task_nbr, workload [task_nbr]);
        s_check (s_send (sender, task));
    }
    free (workload);
    s_say ("sent %d tasks, total expected cost %ld msec", tasks, total_msec);

    //  The ventilator receives nothing: its proof is the connection it made
    s_shm_wait ();
    s_shm_report ();
    //  Default linger: closing waits until every task has left
    zmq_close (sink);
    zmq_close (sender);
    zmq_ctx_term (context);
    return 0;
}
