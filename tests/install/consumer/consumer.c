/*  consumer - the smallest program built against an installed shmipc: it
    needs the installed header and library and nothing from the source tree.
    Prints the content size of a one-frame message. */

#include <shmipc.h>
#include <stdio.h>

int
main (void)
{
    shmipc_msg_t *msg = shmipc_msg_new ();
    if (!msg || shmipc_msg_addmem (msg, "hello", 5)) {
        shmipc_msg_destroy (&msg);
        return 1;
    }
    printf ("content size %zu\n", shmipc_msg_content_size (msg));
    shmipc_msg_destroy (&msg);
    return 0;
}
