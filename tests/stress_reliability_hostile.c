/*  =========================================================================
    stress_reliability_hostile - the long version of
    test_reliability_hostile: 200 rounds of each random attack (scribbling,
    random HELLOs, random records) and 256 MiB of requests never read back
    (SHMIPC_LONG_TESTS=ON)
    =========================================================================
*/

#define S_RANDOM_ROUNDS     200
#define S_NOREAD_MESSAGES   262144

#include "test_reliability_hostile.c"
