/*
 * no_network.c -- a guarantee, linked into every harness, that fuzzing sends no traffic.
 *
 * The harnesses only parse (targets, ports, JSON, option values) or run scripts in the
 * restricted profile, which has no `net`; none of them should ever open a socket or ask a
 * resolver. Should a change to the library make one of them do so, these definitions, which
 * take precedence over the C library's (and the sanitizers' interceptors) in the harness
 * binaries, turn the attempt into a crash that libFuzzer reports with its stack and input,
 * instead of a packet on the network.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

static _Noreturn void refuse(const char *what)
{
    fprintf(stderr, "fuzz: the harness called %s(): harnesses must not use the network\n", what);
    abort();
}

int socket(int domain, int type, int protocol)
{
    (void)domain, (void)type, (void)protocol;
    refuse("socket");
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)fd, (void)addr, (void)len;
    refuse("connect");
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
               socklen_t addrlen)
{
    (void)fd, (void)buf, (void)len, (void)flags, (void)addr, (void)addrlen;
    refuse("sendto");
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    (void)fd, (void)msg, (void)flags;
    refuse("sendmsg");
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    (void)node, (void)service, (void)hints, (void)res;
    refuse("getaddrinfo");
}
