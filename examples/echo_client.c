/*  =========================================================================
    echo_client - a czmq DEALER that measures an echo server over whichever
    transport its endpoint names, checking every echo

    Owns: one DEALER socket and the pattern its messages are cut from.
    Keeps at most S_WINDOW messages in flight, far below the high-water
    marks, so a send never blocks and a lost echo shows as a timeout.

        echo_client [-t MS] ENDPOINT [COUNT] [SIZE]

    Exit status: 0 every echo matched, 1 an echo was wrong (or another
    error), 2 the server went silent for the timeout.
    =========================================================================
*/

#include "shmipc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NAME          "echo_client"
#define S_COUNT         100000          //  Default messages
#define S_SIZE          64              //  Default message bytes
#define S_SIZE_MAX      (256UL << 20)   //  Largest message bytes
#define S_WINDOW        100             //  Messages in flight at most
#define S_TIMEOUT       10000           //  Default ms without an echo (-t)
#define S_SEQ_SIZE      8               //  Sequence number leading a message
#define S_SHIFTS        251             //  Payload offsets: a prime, so that
                                        //  neighbours never look alike

enum { S_OK = 0, S_FAILED = 1, S_SILENT = 2 };

typedef struct {
    zsock_t *dealer;            //  Owned
    uint64_t count;             //  Messages to send
    size_t size;                //  Bytes per message
    uint64_t sent;              //  Sent so far
    uint64_t received;          //  Echoes checked so far
    byte *pattern;              //  size + S_SHIFTS bytes; owned
} s_client_t;

//  Parse a positive count with an optional K or M suffix (powers of 1024).
//  Returns 0, or -1 if it is not one.
static int
s_parse_count (const char *text, uint64_t *count)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text || *text == '-')
        return -1;
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else
    if (*end == 'M' || *end == 'm')
        shift = 20;
    if (shift)
        end++;
    if (*end || value == 0 || value > (UINT64_MAX >> shift))
        return -1;
    *count = (uint64_t) value << shift;
    return 0;
}

//  The scheme of the first endpoint in a list, for the result line.
static void
s_transport (const char *endpoints, char *transport, size_t size)
{
    if (*endpoints == '@' || *endpoints == '>')
        endpoints++;
    const char *end = strstr (endpoints, "://");
    size_t length = end ? (size_t) (end - endpoints) : strlen (endpoints);
    if (length >= size)
        length = size - 1;
    memcpy (transport, endpoints, length);
    transport [length] = 0;
}

//  Message seq: its sequence number, then the pattern from offset
//  seq % S_SHIFTS, so a lost, repeated or reordered message cannot pass.
static int
s_client_send (s_client_t *self, uint64_t seq)
{
    zframe_t *frame = zframe_new (NULL, self->size);
    if (!frame) {
        fprintf (stderr, "%s: out of memory\n", S_NAME);
        return S_FAILED;
    }
    byte *data = zframe_data (frame);
    memcpy (data, &seq, S_SEQ_SIZE);
    memcpy (data + S_SEQ_SIZE, self->pattern + seq % S_SHIFTS + S_SEQ_SIZE,
            self->size - S_SEQ_SIZE);
    if (zframe_send (&frame, self->dealer, 0)) {
        int error = zmq_errno ();
        if (zsys_interrupted) {
            fprintf (stderr, "%s: interrupted\n", S_NAME);
            return S_FAILED;
        }
        if (error == EAGAIN) {
            fprintf (stderr, "%s: cannot send message %" PRIu64 " for %d ms\n",
                     S_NAME, seq, zsock_sndtimeo (self->dealer));
            return S_SILENT;
        }
        fprintf (stderr, "%s: send failed: %s\n", S_NAME, zmq_strerror (error));
        return S_FAILED;
    }
    return S_OK;
}

//  Receive the next echo and check it is message self->received, whole.
static int
s_client_check (s_client_t *self)
{
    uint64_t seq = self->received;
    zmsg_t *msg = zmsg_recv (self->dealer);
    if (!msg) {
        if (zsys_interrupted) {
            fprintf (stderr, "%s: interrupted\n", S_NAME);
            return S_FAILED;
        }
        fprintf (stderr, "%s: no echo for %d ms (%" PRIu64 " sent, %" PRIu64
                 " echoed)\n", S_NAME, zsock_rcvtimeo (self->dealer),
                 self->sent, self->received);
        return S_SILENT;
    }
    int rc = S_FAILED;
    zframe_t *frame = zmsg_first (msg);
    if (zmsg_size (msg) != 1)
        fprintf (stderr, "%s: echo %" PRIu64 " has %zu frames, expected 1\n",
                 S_NAME, seq, zmsg_size (msg));
    else
    if (zframe_size (frame) != self->size)
        fprintf (stderr, "%s: echo %" PRIu64 " has %zu bytes, expected %zu\n",
                 S_NAME, seq, zframe_size (frame), self->size);
    else {
        uint64_t got;
        memcpy (&got, zframe_data (frame), S_SEQ_SIZE);
        if (got != seq)
            fprintf (stderr, "%s: echo %" PRIu64 " carries sequence number %" PRIu64
                     " (lost or out of order)\n", S_NAME, seq, got);
        else
        if (memcmp (zframe_data (frame) + S_SEQ_SIZE,
                    self->pattern + seq % S_SHIFTS + S_SEQ_SIZE, self->size - S_SEQ_SIZE))
            fprintf (stderr, "%s: echo %" PRIu64 " has the right number but other"
                     " content\n", S_NAME, seq);
        else
            rc = S_OK;
    }
    zmsg_destroy (&msg);
    return rc;
}

//  Keep the window full until every echo is back.
static int
s_client_run (s_client_t *self)
{
    int rc = S_OK;
    while (rc == S_OK && self->received < self->count) {
        while (rc == S_OK && self->sent < self->count
        &&     self->sent - self->received < S_WINDOW)
            if ((rc = s_client_send (self, self->sent)) == S_OK)
                self->sent++;
        if (rc == S_OK && (rc = s_client_check (self)) == S_OK)
            self->received++;
    }
    return rc;
}

static void
s_usage (void)
{
    fprintf (stderr,
        "usage: %s [-t MS] ENDPOINT [COUNT] [SIZE]\n"
        "  Send COUNT messages (default %d) of SIZE bytes (default %d, at least %d;\n"
        "  K and M suffixes) to an echo server, %d in flight at most; check every\n"
        "  echo and print the throughput.\n"
        "  ENDPOINT   shm:///path, shm://@name, ipc:///path or tcp://host:port\n"
        "  -t MS      give up after MS ms without an echo (default %d)\n"
        "  Exit status: 0 all echoes matched, 1 a mismatch or error, 2 a timeout.\n",
        S_NAME, S_COUNT, S_SIZE, S_SEQ_SIZE, S_WINDOW, S_TIMEOUT);
}

int
main (int argc, char *argv [])
{
    int first = 1;
    uint64_t timeout = S_TIMEOUT;
    if (first + 1 < argc && streq (argv [first], "-t")) {
        if (s_parse_count (argv [first + 1], &timeout) || timeout > INT32_MAX) {
            s_usage ();
            return S_FAILED;
        }
        first += 2;
    }
    uint64_t size = S_SIZE;
    s_client_t self = { .count = S_COUNT };
    if (argc - first < 1 || argc - first > 3 || argv [first][0] == '-'
    ||  (argc - first >= 2 && s_parse_count (argv [first + 1], &self.count))
    ||  (argc - first >= 3 && s_parse_count (argv [first + 2], &size))
    ||  size < S_SEQ_SIZE || size > S_SIZE_MAX) {
        s_usage ();
        return S_FAILED;
    }
    const char *endpoint = argv [first];
    self.size = (size_t) size;
    self.pattern = (byte *) malloc (self.size + S_SHIFTS);
    if (!self.pattern) {
        fprintf (stderr, "%s: out of memory\n", S_NAME);
        return S_FAILED;
    }
    for (size_t index = 0; index < self.size + S_SHIFTS; index++)
        self.pattern [index] = (byte) (index * 131 + (index >> 8));

    //  A DEALER connects its unprefixed endpoints, as zsock_new_dealer does
    self.dealer = shmipc_sock_new (ZMQ_DEALER, endpoint);
    if (!self.dealer) {
        fprintf (stderr, "%s: cannot connect to %s: %s\n", S_NAME, endpoint,
                 strerror (errno));
        free (self.pattern);
        return S_FAILED;
    }
    //  Connects succeed before the server answers, on every transport: the
    //  timeouts are what tell a dead server from a slow one
    zsock_set_rcvtimeo (self.dealer, (int) timeout);
    zsock_set_sndtimeo (self.dealer, (int) timeout);

    int64_t start = zclock_usecs ();
    int rc = s_client_run (&self);
    double seconds = (double) (zclock_usecs () - start) / 1e6;
    if (seconds <= 0)
        seconds = 1e-6;
    if (rc == S_OK) {
        char transport [32];
        s_transport (endpoint, transport, sizeof transport);
        printf ("%s: %s %" PRIu64 " x %zu B in %.3f s: %.0f msgs/s, %.1f MB/s\n",
                S_NAME, transport, self.received, self.size, seconds,
                (double) self.received / seconds,
                (double) self.received * (double) self.size / seconds / 1e6);
    }
    shmipc_sock_destroy (&self.dealer);
    free (self.pattern);
    return rc;
}
