/*  =========================================================================
    testutil_tools - what every test program may need, whether it links
    libshmipc or stands for a program that does not (tests/swap_czmq):
    which tool runs us, one line said at once, threads that warm the
    allocator and the thread-stack cache

    Plain C and pthreads: no libshmipc, no czmq, no cmocka. Owns nothing.
    =========================================================================
*/

#ifndef SHMIPC_TESTUTIL_TOOLS_H_INCLUDED
#define SHMIPC_TESTUTIL_TOOLS_H_INCLUDED

//  Which tool we were built with: gcc says __SANITIZE_*__, clang
//  __has_feature (*_sanitizer). Defines TU_UNDER_TSAN, TU_UNDER_ASAN.
#if defined (__SANITIZE_THREAD__)
#   define TU_UNDER_TSAN
#endif
#if defined (__SANITIZE_ADDRESS__)
#   define TU_UNDER_ASAN
#endif
#if defined (__has_feature)
#   if __has_feature (thread_sanitizer) && !defined (TU_UNDER_TSAN)
#       define TU_UNDER_TSAN
#   endif
#   if __has_feature (address_sanitizer) && !defined (TU_UNDER_ASAN)
#       define TU_UNDER_ASAN
#   endif
#endif

//  Print one line on stdout (newline added), at once.
void tu_say (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Start count threads at once, each allocating a little, then end them
//  all: glibc then keeps that many cached stacks (and ASan what it made
//  for them), so later threads map nothing new; with count 1, it trims
//  glibc's stack cache. Returns 0, or -1 if a thread could not start (the
//  others are ended).
int tu_warm_threads (int count);

#endif
