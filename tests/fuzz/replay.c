/*  =========================================================================
    replay - runs a fuzz harness over every file of its corpus, so that the
    corpus (and every crash ever found, added to it) is a regression test
    in the default suite, without libFuzzer

    Owns nothing. Usage: replay-NAME DIRECTORY
    =========================================================================
*/

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
main (int argc, char *argv [])
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s CORPUS-DIRECTORY\n", argv [0]);
        return 2;
    }
    DIR *dir = opendir (argv [1]);
    if (!dir) {
        perror (argv [1]);
        return 1;
    }
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char path [4096];
        snprintf (path, sizeof path, "%s/%s", argv [1], entry->d_name);
        FILE *file = fopen (path, "rb");
        if (!file)
            continue;
        uint8_t *data = (uint8_t *) malloc (1 << 20);
        size_t size = fread (data, 1, 1 << 20, file);
        fclose (file);
        LLVMFuzzerTestOneInput (data, size);
        free (data);
        count++;
    }
    closedir (dir);
    printf ("replayed %d inputs from %s\n", count, argv [1]);
    return count > 0 ? 0 : 1;
}
