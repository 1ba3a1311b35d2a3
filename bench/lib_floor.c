/*
 * lib_floor - the resident memory that trackpixel's libraries take by
 * themselves, for the memory section of make bench.
 *
 * Linked with exactly what trackpixel links (libfcgi, libcurl and what it
 * pulls in, json-c, libcrypto).  With no argument it only loads them; with
 * "init" it also initializes them as trackpixel's main() does (OpenSSL
 * without libcrypto's error strings, libfcgi, libcurl; GnuTLS's implicit
 * initialization skipped the same way).  Then it prints "ready" and waits
 * for SIGTERM, so that bench.py can read /proc/<pid>/status.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fcgiapp.h>
#include <json-c/json.h>
#include <openssl/crypto.h>

/* As in src/main.c. */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
    return 1;
}

int main(int argc, char **argv)
{
    sigset_t set;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (argc > 1 && strcmp(argv[1], "init") == 0) {
        if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL) != 1 ||
            FCGX_Init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return 1;
    } else {
        /* Referenced, so that --as-needed keeps every library. */
        volatile void *keep[] = { (void *)FCGX_Init, (void *)curl_global_init,
                                  (void *)json_object_new_object,
                                  (void *)OPENSSL_init_crypto };
        (void)keep;
    }
    printf("ready\n");
    fflush(stdout);
    sigwait(&set, &sig);
    return 0;
}
