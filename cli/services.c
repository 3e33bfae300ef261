/*
 * services.c -- TCP port numbers and the services behind them: the names of /etc/services,
 * which every scan output shows, and the open-frequencies of nmap's nmap-services data file,
 * from which --top-ports picks the ports most often found open. Both are read at run time,
 * so the program carries no copy of either list.
 */
#include "scan_out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Splits a services line into its name and "PORT/PROTO" fields and the field after them (the
 * frequency in nmap-services), in place; false for a comment, a blank or a malformed line, or
 * a protocol other than tcp. */
static bool tcp_entry(char *line, char **name, unsigned *port, char **third)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    char *save = NULL;
    *name = strtok_r(line, " \t\r\n", &save);
    char *pp = strtok_r(NULL, " \t\r\n", &save);
    *third = strtok_r(NULL, " \t\r\n", &save);
    if (!*name || !pp)
        return false;
    char *slash = strchr(pp, '/');
    if (!slash || strcmp(slash + 1, "tcp") != 0)
        return false;
    *slash = '\0';
    unsigned long p;
    if (!parse_count(pp, 1, 65535, &p))
        return false;
    *port = (unsigned)p;
    return true;
}

services *services_load(const char *path)
{
    services *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return s; /* no names: every port shows as unknown */
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *name, *third;
        unsigned port;
        /* The first name given for a port is its name, as getservbyport gives. */
        if (tcp_entry(line, &name, &port, &third) && !s->name[port])
            s->name[port] = strdup(name);
    }
    free(line);
    fclose(f);
    return s;
}

void services_free(services *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < 65536; i++)
        free(s->name[i]);
    free(s);
}

const char *service_name(const services *s, unsigned port)
{
    return s && port < 65536 ? s->name[port] : NULL;
}

typedef struct ranked {
    unsigned port;
    double freq;
} ranked;

/* Most often open first; among equals, the lower port. */
static int by_frequency(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->freq != b->freq)
        return a->freq > b->freq ? -1 : 1;
    return a->port < b->port ? -1 : a->port > b->port;
}

char *top_ports(const char *path, unsigned n, int *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = errno;
        return NULL;
    }
    ranked *all = calloc(65536, sizeof *all);
    size_t count = 0;
    char *line = NULL, *spec = NULL;
    size_t cap = 0;
    while (all && getline(&line, &cap, f) > 0) {
        char *name, *third, *end;
        unsigned port;
        if (!tcp_entry(line, &name, &port, &third) || !third)
            continue;
        double freq = strtod(third, &end);
        if (*end || !(freq >= 0 && freq <= 1) || count == 65536)
            continue;
        all[count++] = (ranked){port, freq};
    }
    *err = ferror(f) ? EIO : 0;
    free(line);
    fclose(f);
    if (!all) {
        *err = ENOMEM;
        return NULL;
    }
    if (!*err && count == 0)
        *err = ENODATA; /* not nmap-services: no "name port/tcp frequency" line */
    if (!*err) {
        qsort(all, count, sizeof *all, by_frequency);
        if (n > count)
            n = (unsigned)count;
        spec = malloc((size_t)n * 6 + 1);
        if (spec) {
            size_t len = 0;
            for (unsigned i = 0; i < n; i++)
                len += (size_t)sprintf(spec + len, "%s%u", i ? "," : "", all[i].port);
            spec[len] = '\0';
        } else {
            *err = ENOMEM;
        }
    }
    free(all);
    return spec;
}
