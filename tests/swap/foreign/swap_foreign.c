/*  swap_foreign - a program that loads, with dlopen and RTLD_LOCAL, two
    extension modules, as Python loads its own: one linked with the system
    libzmq (Debian's python3-zmq), one with a libzmq of its own (a pip
    wheel of pyzmq bundles one; fakezmq stands for it). Under shmipc-run
    the first gets shm:// in shared memory, and every call of the second
    still reaches its own copy, untouched: the preload library keeps the
    system libzmq out of the global scope and sends each caller to its own
    libzmq (callers.c).
        swap_foreign SYSTEM_EXT.so FOREIGN_EXT.so   (under shmipc-run)
*/
#include <dlfcn.h>
#include <stdio.h>

//  Load extension path and run its function name; returns its result, or
//  -1 if it cannot be loaded.
static int
s_run (const char *path, const char *name)
{
    void *extension = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    if (!extension) {
        fprintf (stderr, "swap_foreign: FAIL: %s\n", dlerror ());
        return -1;
    }
    int (*run) (void) = (int (*) (void)) dlsym (extension, name);
    int rc = run ? run () : -1;
    dlclose (extension);
    return rc;
}

int
main (int argc, char *argv [])
{
    if (argc != 3) {
        fprintf (stderr, "usage: swap_foreign SYSTEM_EXT.so FOREIGN_EXT.so\n");
        return 2;
    }
    int system = s_run (argv [1], "system_ext_run");
    if (system) {
        fprintf (stderr, "swap_foreign: FAIL: shm:// on the system libzmq, step %d"
                 " (not under shmipc-run?)\n", system);
        return 1;
    }
    int foreign = s_run (argv [2], "foreign_ext_run");
    if (foreign) {
        fprintf (stderr, "swap_foreign: FAIL: the extension's own libzmq, step %d\n", foreign);
        return 1;
    }
    //  And the system one again, after the foreign one was seen
    if (s_run (argv [1], "system_ext_run")) {
        fprintf (stderr, "swap_foreign: FAIL: shm:// after the foreign extension\n");
        return 1;
    }
    printf ("swap_foreign: ok: shm:// for the system libzmq's caller, the other's calls on its own copy\n");
    return 0;
}
