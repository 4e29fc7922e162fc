/*  =========================================================================
    stress_reliability_load - the long version of test_reliability_load:
    256 clients for a minute, and 20,000 messages (1.25 GiB) to a slow
    consumer (SHMIPC_LONG_TESTS=ON)
    =========================================================================
*/

#define S_LOAD_MS       60000
#define S_SLOW_MESSAGES 20000

#include "test_reliability_load.c"
