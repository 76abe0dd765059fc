// slowresolve: an LD_PRELOAD fault injector for name resolution, for tests.
//
// getaddrinfo() for a host name ending in ".slow.test" sleeps for
// SLOWRESOLVE_MS milliseconds (default 3000), then answers 127.0.0.1 at the
// requested port: a slow resolver, on whatever thread asks. Every other
// name goes to the real getaddrinfo. Used by the integration tests to show
// that a peer's host name is resolved off the daemon's loop thread (its
// HTTP API keeps answering while a resolution hangs).
//
// Lifetime: loaded into the process under test; no state.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef int (*getaddrinfo_fn)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
typedef void (*freeaddrinfo_fn)(struct addrinfo*);

static const char kSuffix[] = ".slow.test";

static int is_slow(const char* node) {
  if (node == NULL) return 0;
  size_t n = strlen(node), k = sizeof(kSuffix) - 1;
  return n > k && strcmp(node + n - k, kSuffix) == 0;
}

// One block holds the addrinfo and its address. The real freeaddrinfo is
// never handed it: freeaddrinfo below knows it by its canonical name, which
// points at this library's own string.
struct slow_answer {
  struct addrinfo ai;
  struct sockaddr_in sin;
};
static char kCanonName[] = "slow.test";

int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints, struct addrinfo** res) {
  if (!is_slow(node)) {
    getaddrinfo_fn real;
    *(void**)(&real) = dlsym(RTLD_NEXT, "getaddrinfo");  // POSIX's idiom for a function pointer
    return real(node, service, hints, res);
  }
  long ms = 3000;
  const char* e = getenv("SLOWRESOLVE_MS");
  if (e != NULL) ms = strtol(e, NULL, 10);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  if (hints != NULL && hints->ai_family == AF_INET6) return EAI_NONAME;
  struct slow_answer* a = calloc(1, sizeof(*a));
  if (a == NULL) return EAI_MEMORY;
  a->ai.ai_canonname = kCanonName;
  a->sin.sin_family = AF_INET;
  a->sin.sin_port = htons((unsigned short)(service != NULL ? atoi(service) : 0));
  a->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a->ai.ai_family = AF_INET;
  a->ai.ai_socktype = hints != NULL && hints->ai_socktype != 0 ? hints->ai_socktype : SOCK_STREAM;
  a->ai.ai_protocol = IPPROTO_TCP;
  a->ai.ai_addrlen = sizeof(a->sin);
  a->ai.ai_addr = (struct sockaddr*)&a->sin;
  *res = &a->ai;
  return 0;
}

void freeaddrinfo(struct addrinfo* ai) {
  if (ai != NULL && ai->ai_canonname == kCanonName) {
    free(ai);
    return;
  }
  freeaddrinfo_fn real;
  *(void**)(&real) = dlsym(RTLD_NEXT, "freeaddrinfo");
  real(ai);
}
