/*
 * scan_files.c -- `runspace scan -oN/-oX/-oG/-oA`: the scan in nmap's normal, XML and
 * grepable formats, so that ndiff, Zenmap and the scripts that import nmap's files read it.
 * The XML is valid against the DTD nmap ships (nmap.dtd); a test checks it with xmllint.
 *
 * These formats group ports by host, while results come in the order they are decided. A host
 * is kept (four bytes per decided port) until all of its ports are decided, then written and
 * dropped. Probes go out address by address, so the hosts in flight are those of the probes in
 * flight, and memory follows the window of the scan, not the number of hosts.
 *
 * As nmap does, the largest state other than open of a host is left out of the port lists when
 * it holds more than 25 ports, and only counted ("Not shown: 997 closed tcp ports").
 */
#include "scan_out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHOWN_MAX 25 /* ports of one state listed before the state is only counted */
#define REASONS_MAX 255

/* One decided port of a host. */
typedef struct port_entry {
    uint16_t port;
    uint8_t state;  /* rs_port_state */
    uint8_t reason; /* index into scan_files.reasons */
} port_entry;

typedef struct host {
    struct host *next; /* in its hash bucket */
    char *host, *address;
    port_entry *ports;
    size_t n, cap;
    double rtt; /* the smallest round trip of an answer, or -1 */
    time_t start;
} host;

typedef struct out_file {
    FILE *f;
    const char *path;
    const char *option;
} out_file;

struct scan_files {
    out_file normal, xml, grepable;
    scan_meta meta;
    time_t start;
    host **buckets;
    size_t nbuckets, nhosts;
    uint64_t hosts_done;
    char *reasons[REASONS_MAX + 1]; /* interned reasons: a port keeps an index */
    size_t nreasons;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void date_text(time_t t, char *buf, size_t size)
{
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, size, "%a %b %e %H:%M:%S %Y", &tm);
}

/* Writes s with XML's special characters as entities; control characters (which XML 1.0
 * cannot carry) and bytes that are not UTF-8 become '?' and U+FFFD. */
static void xml_text(FILE *f, const char *s)
{
    char *valid = utf8_text(s);
    for (const char *p = valid ? valid : ""; *p; p++) {
        unsigned char c = (unsigned char)*p;
        switch (c) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            fputc(c < 0x20 && c != '\t' ? '?' : c, f);
        }
    }
    free(valid);
}

/* The index of reason among the interned ones, adding it; the last slot when full. */
static uint8_t intern_reason(scan_files *sf, const char *reason)
{
    for (size_t i = 0; i < sf->nreasons; i++) {
        if (strcmp(sf->reasons[i], reason) == 0)
            return (uint8_t)i;
    }
    if (sf->nreasons == REASONS_MAX)
        return REASONS_MAX - 1;
    char *copy = strdup(reason);
    if (!copy)
        return 0;
    sf->reasons[sf->nreasons] = copy;
    return (uint8_t)sf->nreasons++;
}

static const char *reason_of(const scan_files *sf, const port_entry *e)
{
    return e->reason < sf->nreasons ? sf->reasons[e->reason] : "unknown";
}

static const char *service_of(const scan_files *sf, unsigned port)
{
    const char *name = service_name(sf->meta.names, port);
    return name ? name : "unknown";
}

/* ---- hosts in flight ---------------------------------------------------------------------- */

static size_t hash_key(const char *h, const char *a)
{
    size_t x = 1469598103934665603u;
    for (const char *p = h; *p; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211u;
    x = (x ^ 0xff) * 1099511628211u;
    for (const char *p = a; *p; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211u;
    return x;
}

/* The host record of r, made when it is the first result of its host; NULL out of memory. */
static host *host_of(scan_files *sf, const rs_scan_result *r)
{
    if (sf->nhosts >= sf->nbuckets) {
        size_t nb = sf->nbuckets ? 2 * sf->nbuckets : 64;
        host **b = calloc(nb, sizeof *b);
        if (!b)
            return NULL;
        for (size_t i = 0; i < sf->nbuckets; i++) {
            for (host *h = sf->buckets[i], *next; h; h = next) {
                next = h->next;
                size_t k = hash_key(h->host, h->address) % nb;
                h->next = b[k];
                b[k] = h;
            }
        }
        free(sf->buckets);
        sf->buckets = b;
        sf->nbuckets = nb;
    }
    size_t k = hash_key(r->host, r->address) % sf->nbuckets;
    for (host *h = sf->buckets[k]; h; h = h->next) {
        if (strcmp(h->host, r->host) == 0 && strcmp(h->address, r->address) == 0)
            return h;
    }
    host *h = calloc(1, sizeof *h);
    if (!h || !(h->host = strdup(r->host)) || !(h->address = strdup(r->address))) {
        if (h)
            free(h->host);
        free(h);
        return NULL;
    }
    h->rtt = -1;
    h->start = time(NULL);
    h->next = sf->buckets[k];
    sf->buckets[k] = h;
    sf->nhosts++;
    return h;
}

static void host_unlink(scan_files *sf, host *h)
{
    size_t k = hash_key(h->host, h->address) % sf->nbuckets;
    for (host **p = &sf->buckets[k]; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            sf->nhosts--;
            return;
        }
    }
}

static void host_free(host *h)
{
    free(h->host);
    free(h->address);
    free(h->ports);
    free(h);
}

/* ---- writing a host ----------------------------------------------------------------------- */

static int by_port(const void *pa, const void *pb)
{
    const port_entry *a = pa, *b = pb;
    return (int)a->port - (int)b->port;
}

/* What a host's port lists leave out: the largest state other than open, when it holds more
 * than SHOWN_MAX ports (-1: nothing), with its count and its most common reason. */
typedef struct hidden {
    int state;
    size_t count;
    const char *reason;
} hidden;

static hidden hidden_of(const scan_files *sf, const host *h)
{
    size_t count[4] = {0};
    for (size_t i = 0; i < h->n; i++)
        count[h->ports[i].state]++;
    hidden x = {.state = -1};
    for (int s = RS_PORT_CLOSED; s <= RS_PORT_ERROR; s++) {
        if (count[s] > SHOWN_MAX && count[s] > x.count)
            x = (hidden){.state = s, .count = count[s]};
    }
    if (x.state >= 0) {
        /* Its most common reason (a reason is an index below 256). */
        size_t *by = calloc(REASONS_MAX + 1, sizeof *by);
        size_t best = 0;
        for (size_t i = 0; by && i < h->n; i++) {
            const port_entry *e = &h->ports[i];
            if (e->state == x.state && ++by[e->reason] > best) {
                best = by[e->reason];
                x.reason = reason_of(sf, e);
            }
        }
        free(by);
    }
    return x;
}

/* "NAME (ADDRESS)" or "ADDRESS" as nmap's reports name a host. */
static void host_title(FILE *f, const host *h)
{
    if (strcmp(h->host, h->address) != 0)
        fprintf(f, "%s (%s)", h->host, h->address);
    else
        fputs(h->address, f);
}

static void write_normal(const scan_files *sf, FILE *f, const host *h, const hidden *x)
{
    fputs("Nmap scan report for ", f);
    host_title(f, h);
    fputc('\n', f);
    if (h->rtt >= 0)
        fprintf(f, "Host is up (%.2gs latency).\n", h->rtt);
    else
        fputs("Host is up.\n", f);
    size_t pw = 4, sw = 5; /* "PORT", "STATE" */
    bool any = false;
    for (size_t i = 0; i < h->n; i++) {
        const port_entry *e = &h->ports[i];
        if (e->state == x->state)
            continue;
        char pt[16];
        size_t len = (size_t)snprintf(pt, sizeof pt, "%u/tcp", e->port);
        pw = len > pw ? len : pw;
        len = strlen(rs_port_state_name((rs_port_state)e->state));
        sw = len > sw ? len : sw;
        any = true;
    }
    if (!any && x->state >= 0) {
        fprintf(f, "All %zu scanned ports on ", x->count);
        host_title(f, h);
        fputs(" are in ignored states.\n", f);
    }
    if (x->state >= 0)
        fprintf(f, "Not shown: %zu %s tcp ports (%s)\n", x->count,
                rs_port_state_name((rs_port_state)x->state), x->reason ? x->reason : "unknown");
    if (any) {
        fprintf(f, "%-*s %-*s SERVICE\n", (int)pw, "PORT", (int)sw, "STATE");
        for (size_t i = 0; i < h->n; i++) {
            const port_entry *e = &h->ports[i];
            if (e->state == x->state)
                continue;
            char pt[16];
            snprintf(pt, sizeof pt, "%u/tcp", e->port);
            fprintf(f, "%-*s %-*s %s\n", (int)pw, pt, (int)sw,
                    rs_port_state_name((rs_port_state)e->state), service_of(sf, e->port));
        }
    }
    fputc('\n', f);
}

static void write_xml(const scan_files *sf, FILE *f, const host *h, const hidden *x)
{
    bool v6 = strchr(h->address, ':') != NULL;
    fprintf(f,
            "<host starttime=\"%lld\" endtime=\"%lld\"><status state=\"up\" reason=\"user-set\" "
            "reason_ttl=\"0\"/>\n<address addr=\"",
            (long long)h->start, (long long)time(NULL));
    xml_text(f, h->address);
    fprintf(f, "\" addrtype=\"%s\"/>\n<hostnames>\n", v6 ? "ipv6" : "ipv4");
    if (strcmp(h->host, h->address) != 0) {
        fputs("<hostname name=\"", f);
        xml_text(f, h->host);
        fputs("\" type=\"user\"/>\n", f);
    }
    fputs("</hostnames>\n<ports>", f);
    if (x->state >= 0) {
        fprintf(f, "<extraports state=\"%s\" count=\"%zu\">\n",
                rs_port_state_name((rs_port_state)x->state), x->count);
        size_t same = 0;
        for (size_t i = 0; i < h->n; i++)
            same += h->ports[i].state == x->state && x->reason &&
                    strcmp(reason_of(sf, &h->ports[i]), x->reason) == 0;
        if (x->reason) {
            fputs("<extrareasons reason=\"", f);
            xml_text(f, x->reason);
            fprintf(f, "\" count=\"%zu\" proto=\"tcp\"/>\n", same);
        }
        fputs("</extraports>\n", f);
    }
    for (size_t i = 0; i < h->n; i++) {
        const port_entry *e = &h->ports[i];
        if (e->state == x->state)
            continue;
        fprintf(f, "<port protocol=\"tcp\" portid=\"%u\"><state state=\"%s\" reason=\"", e->port,
                rs_port_state_name((rs_port_state)e->state));
        xml_text(f, reason_of(sf, e));
        fputs("\" reason_ttl=\"0\"/>", f);
        const char *name = service_name(sf->meta.names, e->port);
        if (name) {
            fputs("<service name=\"", f);
            xml_text(f, name);
            fputs("\" method=\"table\" conf=\"3\"/>", f);
        }
        fputs("</port>\n", f);
    }
    fputs("</ports>\n</host>\n", f);
}

static void write_grepable(const scan_files *sf, FILE *f, const host *h, const hidden *x)
{
    const char *name = strcmp(h->host, h->address) != 0 ? h->host : "";
    fprintf(f, "Host: %s (%s)\tStatus: Up\n", h->address, name);
    fprintf(f, "Host: %s (%s)\tPorts: ", h->address, name);
    bool first = true;
    for (size_t i = 0; i < h->n; i++) {
        const port_entry *e = &h->ports[i];
        if (e->state == x->state)
            continue;
        /* port/state/protocol/owner/service/rpc info/version info/ */
        fprintf(f, "%s%u/%s/tcp//%s///", first ? "" : ", ", e->port,
                rs_port_state_name((rs_port_state)e->state), service_of(sf, e->port));
        first = false;
    }
    if (x->state >= 0)
        fprintf(f, "\tIgnored State: %s (%zu)", rs_port_state_name((rs_port_state)x->state),
                x->count);
    fputc('\n', f);
}

/* Writes a host to every file and drops it. */
static void host_done(scan_files *sf, host *h)
{
    host_unlink(sf, h);
    qsort(h->ports, h->n, sizeof *h->ports, by_port);
    hidden x = hidden_of(sf, h);
    if (sf->normal.f)
        write_normal(sf, sf->normal.f, h, &x);
    if (sf->xml.f)
        write_xml(sf, sf->xml.f, h, &x);
    if (sf->grepable.f)
        write_grepable(sf, sf->grepable.f, h, &x);
    sf->hosts_done++;
    host_free(h);
}

/* ---- the public side ---------------------------------------------------------------------- */

static bool open_one(out_file *o, const char *path, const char *option)
{
    o->path = path;
    o->option = option;
    if (!path)
        return true;
    o->f = fopen(path, "w");
    if (!o->f) {
        cli_error("cannot open '%s' for %s: %s", path, option, strerror(errno));
        return false;
    }
    return true;
}

scan_files *scan_files_open(const char *normal, const char *xml, const char *grepable,
                            const scan_meta *meta)
{
    scan_files *sf = calloc(1, sizeof *sf);
    if (!sf) {
        cli_error("out of memory");
        return NULL;
    }
    sf->meta = *meta;
    sf->start = time(NULL);
    if (!open_one(&sf->normal, normal, "-oN") || !open_one(&sf->xml, xml, "-oX") ||
        !open_one(&sf->grepable, grepable, "-oG")) {
        out_file *all[] = {&sf->normal, &sf->xml, &sf->grepable};
        for (int i = 0; i < 3; i++) {
            if (all[i]->f)
                fclose(all[i]->f);
        }
        free(sf);
        return NULL;
    }
    char date[64];
    date_text(sf->start, date, sizeof date);
    const char *version = RS_VERSION_STRING;
    if (sf->normal.f)
        fprintf(sf->normal.f, "# runspace %s scan initiated %s as: %s\n", version, date,
                meta->args);
    if (sf->grepable.f)
        fprintf(sf->grepable.f, "# runspace %s scan initiated %s as: %s\n", version, date,
                meta->args);
    FILE *x = sf->xml.f;
    if (x) {
        /* scanner="nmap" is what the DTD allows; the comment and args say who wrote it. */
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nmaprun>\n<!-- runspace ", x);
        xml_text(x, version);
        fputs(" scan, in nmap's XML format -->\n<nmaprun scanner=\"nmap\" args=\"", x);
        xml_text(x, meta->args);
        fprintf(x, "\" start=\"%lld\" startstr=\"%s\" version=\"%s\" xmloutputversion=\"1.05\">\n",
                (long long)sf->start, date, version);
        fprintf(x, "<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"%u\" services=\"",
                meta->nports);
        xml_text(x, meta->ports);
        fputs("\"/>\n<verbose level=\"0\"/>\n<debugging level=\"0\"/>\n", x);
    }
    return sf;
}

void scan_files_result(scan_files *sf, const rs_scan_result *r)
{
    if (!sf)
        return;
    if (r->port == 0) {
        /* A target that failed as a whole: a name that did not resolve. */
        if (sf->normal.f)
            fprintf(sf->normal.f, "Failed to resolve \"%s\": %s.\n", r->host, r->reason);
        if (sf->grepable.f)
            fprintf(sf->grepable.f, "# Failed to resolve %s: %s\n", r->host, r->reason);
        if (sf->xml.f) {
            fputs("<target specification=\"", sf->xml.f);
            xml_text(sf->xml.f, r->host);
            fputs("\" status=\"skipped\" reason=\"invalid\"/>\n", sf->xml.f);
        }
        return;
    }
    host *h = host_of(sf, r);
    if (!h)
        return;
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        port_entry *p = realloc(h->ports, cap * sizeof *p);
        if (!p)
            return;
        h->ports = p;
        h->cap = cap;
    }
    h->ports[h->n++] = (port_entry){.port = (uint16_t)r->port,
                                    .state = (uint8_t)r->state,
                                    .reason = intern_reason(sf, r->reason)};
    if (r->rtt >= 0 && (r->state == RS_PORT_OPEN || r->state == RS_PORT_CLOSED) &&
        (h->rtt < 0 || r->rtt < h->rtt))
        h->rtt = r->rtt;
    if (h->n >= sf->meta.nports)
        host_done(sf, h);
}

/* Closes o, reporting its first failure. */
static bool close_one(out_file *o)
{
    if (!o->f)
        return true;
    bool ok = !ferror(o->f);
    int err = ok ? 0 : EIO;
    if (fclose(o->f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    o->f = NULL;
    if (!ok)
        cli_error("cannot write '%s' (%s): %s", o->path, o->option, strerror(err));
    return ok;
}

bool scan_files_close(scan_files *sf, const rs_scan_summary *sum, bool stopped)
{
    if (!sf)
        return true;
    /* A stopped scan's hosts, with the ports that were decided. */
    for (size_t i = 0; i < sf->nbuckets; i++) {
        while (sf->buckets[i])
            host_done(sf, sf->buckets[i]);
    }
    time_t end = time(NULL);
    char date[64];
    date_text(end, date, sizeof date);
    unsigned long long hosts = (unsigned long long)sum->hosts;
    char tail[200];
    snprintf(tail, sizeof tail, "%llu IP address%s (%llu host%s up) scanned in %.2f seconds", hosts,
             hosts == 1 ? "" : "es", hosts, hosts == 1 ? "" : "s", sum->elapsed);
    if (sf->normal.f)
        fprintf(sf->normal.f, "# runspace done at %s -- %s%s\n", date, tail,
                stopped ? " (interrupted)" : "");
    if (sf->grepable.f)
        fprintf(sf->grepable.f, "# runspace done at %s -- %s%s\n", date, tail,
                stopped ? " (interrupted)" : "");
    if (sf->xml.f) {
        fprintf(sf->xml.f,
                "<runstats><finished time=\"%lld\" timestr=\"%s\" summary=\"runspace done at %s; "
                "%s\" elapsed=\"%.2f\" exit=\"%s\"%s/><hosts up=\"%llu\" down=\"0\" "
                "total=\"%llu\"/>\n</runstats>\n</nmaprun>\n",
                (long long)end, date, date, tail, sum->elapsed, stopped ? "error" : "success",
                stopped ? " errormsg=\"interrupted\"" : "", hosts, hosts);
    }
    bool ok = close_one(&sf->normal);
    ok = close_one(&sf->xml) && ok;
    ok = close_one(&sf->grepable) && ok;
    for (size_t i = 0; i < sf->nreasons; i++)
        free(sf->reasons[i]);
    free(sf->buckets);
    free(sf);
    return ok;
}

char *scan_port_list(const rs_scan *scan, unsigned *count)
{
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    unsigned n = 0;
    if (!s)
        return NULL;
    s[0] = '\0';
    for (unsigned p = rs_scan_next_port(scan, 0); p;) {
        unsigned q = p, next;
        while ((next = rs_scan_next_port(scan, q)) == q + 1)
            q = next;
        n += q - p + 1;
        if (cap - len < 16) {
            char *g = realloc(s, cap *= 2);
            if (!g) {
                free(s);
                return NULL;
            }
            s = g;
        }
        len += (size_t)(q > p ? snprintf(s + len, cap - len, "%s%u-%u", len ? "," : "", p, q)
                              : snprintf(s + len, cap - len, "%s%u", len ? "," : "", p));
        p = next;
    }
    *count = n;
    return s;
}
