/*  =========================================================================
    taskwork - task worker: pulls tasks from the ventilator, "works" for
    each task's msecs, pushes a result to the sink, and stops when the sink
    publishes KILL on its control socket (zmq_poll over both sockets).

    Usage: taskwork [CONTROL_ENDPOINT]  (default shm://@guide-task-control)
    =========================================================================
*/

#include "guide.h"

int
main (int argc, char *argv [])
{
    const char *control_endpoint = argc > 1? argv [1]: "shm://@guide-task-control";

    void *context = zmq_ctx_new ();
    //  The control socket first, so it is subscribed by the time tasks come
    void *controller = zmq_socket (context, ZMQ_SUB);
    s_check (zmq_connect (controller, control_endpoint));
    s_check (zmq_setsockopt (controller, ZMQ_SUBSCRIBE, "", 0));
    void *receiver = zmq_socket (context, ZMQ_PULL);
    s_check (zmq_connect (receiver, "shm://tasks.shm"));
    void *sender = zmq_socket (context, ZMQ_PUSH);
    s_check (zmq_connect (sender, "shm://results.shm"));
    s_shm_wait ();              //  the sink, started first, is there
    s_say ("connected");

    int done = 0;
    bool killed = false;
    while (!killed) {
        zmq_pollitem_t items [] = {
            { receiver, 0, ZMQ_POLLIN, 0 },
            { controller, 0, ZMQ_POLLIN, 0 }
        };
        int rc = zmq_poll (items, 2, GUIDE_PATIENCE_MS);
        if (rc == -1)
            s_fail ("zmq_poll");
        if (rc == 0)
            s_fail ("no task and no KILL after %d tasks", done);
        if (items [0].revents & ZMQ_POLLIN) {
            char *task = s_recv_must (receiver, "task");
            s_shm_note ();
            int task_nbr, msec;
            if (sscanf (task, "%d %d", &task_nbr, &msec) != 2 || msec < 1 || msec > 10)
                s_fail ("task '%s'", task);
            free (task);
            s_sleep (msec);     //  Do the work
            char result [64];
            snprintf (result, sizeof result, "RESULT %d %d %d", (int) getpid (), task_nbr, msec);
            s_check (s_send (sender, result));
            done++;
        }
        if (items [1].revents & ZMQ_POLLIN) {
            char *command = s_recv_must (controller, "command");
            s_shm_note ();
            if (strcmp (command, "KILL"))
                s_fail ("command '%s'", command);
            free (command);
            killed = true;
        }
    }
    s_say ("did %d tasks", done);
    s_shm_report ();
    zmq_close (receiver);
    zmq_close (sender);
    zmq_close (controller);
    zmq_ctx_term (context);
    return 0;
}
