/*  =========================================================================
    tasksink - task sink: a PULL socket collects the ventilator's batch
    message and every worker's result (in whatever order they come), checks
    that each task came back once and that the workloads add up, then
    publishes KILL to the workers.

    Usage: tasksink [CONTROL_ENDPOINT]  (default shm://@guide-task-control)
    =========================================================================
*/

#include "guide.h"

#define MAX_TASKS   10000
#define MAX_WORKERS 64

int
main (int argc, char *argv [])
{
    const char *control_endpoint = argc > 1? argv [1]: "shm://@guide-task-control";

    void *context = zmq_ctx_new ();
    void *receiver = zmq_socket (context, ZMQ_PULL);
    s_set_int (receiver, ZMQ_RCVTIMEO, GUIDE_PATIENCE_MS);
    s_check (zmq_bind (receiver, "shm://results.shm"));
    void *controller = zmq_socket (context, ZMQ_PUB);
    s_check (zmq_bind (controller, control_endpoint));

    //  The batch message comes from the ventilator and the results from
    //  the workers, each over its own connection: fair queueing gives no
    //  order between them, so the sink takes either first
    static bool seen [MAX_TASKS];
    int tasks = -1, results = 0;
    long expected_msec = -1, total_msec = 0;
    int workers [MAX_WORKERS], nbr_workers = 0;
    int64_t start = s_clock ();
    while (tasks == -1 || results < tasks) {
        char *message = s_recv_must (receiver, "result");
        if (results == 0)
            s_shm_note ();
        int task_nbr, pid, msec;
        if (sscanf (message, "BATCH %d %ld", &task_nbr, &expected_msec) == 2) {
            if (tasks != -1 || task_nbr < 1 || task_nbr > MAX_TASKS)
                s_fail ("batch message '%s'", message);
            tasks = task_nbr;
        }
        else
        if (sscanf (message, "RESULT %d %d %d", &pid, &task_nbr, &msec) == 3) {
            if (task_nbr < 0 || task_nbr >= MAX_TASKS || seen [task_nbr])
                s_fail ("result '%s' is a duplicate or out of range", message);
            seen [task_nbr] = true;
            results++;
            total_msec += msec;
            int worker;
            for (worker = 0; worker < nbr_workers; worker++)
                if (workers [worker] == pid)
                    break;
            if (worker == nbr_workers && nbr_workers < MAX_WORKERS)
                workers [nbr_workers++] = pid;
        }
        else
            s_fail ("message '%s'", message);
        free (message);
    }
    for (int task_nbr = 0; task_nbr < tasks; task_nbr++)
        if (!seen [task_nbr])
            s_fail ("task %d never came back", task_nbr);
    if (total_msec != expected_msec)
        s_fail ("workloads add up to %ld msec, the ventilator said %ld",
                total_msec, expected_msec);
    s_say ("%d results, %ld msec of work, from %d workers, in %d msec",
           results, total_msec, nbr_workers, (int) (s_clock () - start));

    //  PUB sends to whoever is subscribed now: say it a few times, so
    //  that a worker whose subscription was still on its way hears it too
    for (int count = 0; count < 10; count++) {
        s_check (s_send (controller, "KILL"));
        s_sleep (100);
    }
    s_shm_report ();
    zmq_close (receiver);
    zmq_close (controller);
    zmq_ctx_term (context);
    return 0;
}
