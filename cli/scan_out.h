/*
 * scan_out.h -- what `runspace scan` writes besides its standard output: service names
 * (services.c) and the files in nmap's normal, XML and grepable formats (scan_files.c).
 */
#ifndef RS_SCAN_OUT_H
#define RS_SCAN_OUT_H

#include "cli.h"

/* ---- services.c --------------------------------------------------------------------------- */

/* The TCP service names of a services(5) file, by port. */
typedef struct services {
    char *name[65536];
} services;

/* Reads the names of path (/etc/services); a file that cannot be read gives a table without
 * names. NULL only when out of memory. */
services *services_load(const char *path);
void services_free(services *s);
/* The name of port, or NULL when it has none. */
const char *service_name(const services *s, unsigned port);

/* The n TCP ports most often found open, by the open-frequencies of nmap's nmap-services file
 * at path, as a port list for rs_scan_add_ports ("80,23,443,...", most frequent first; all of
 * them when the file has fewer than n), in a new string (free). NULL with *err an errno when
 * the file cannot be read, or ENODATA when it holds no TCP frequencies. */
char *top_ports(const char *path, unsigned n, int *err);

/* ---- scan_files.c ------------------------------------------------------------------------- */

/* What the file formats say about the run as a whole. */
typedef struct scan_meta {
    const char *args;      /* the command line, for the headers */
    const char *ports;     /* the ports scanned as a list ("22,80,1000-2000") */
    unsigned nports;       /* how many */
    const services *names; /* service names (may be NULL) */
} scan_meta;

/* The open output files of a scan; every file name may be NULL (no such file). */
typedef struct scan_files scan_files;

/* Opens (truncates) the files and writes their headers. On failure returns NULL after
 * "runspace: cannot open 'FILE' for OPTION: REASON" on stderr, with nothing left open. */
scan_files *scan_files_open(const char *normal, const char *xml, const char *grepable,
                            const scan_meta *meta);
/* Takes one result. A host's ports are written once all of them are decided, so memory holds
 * only the hosts in flight. */
void scan_files_result(scan_files *f, const rs_scan_result *r);
/* Writes the hosts still open (a stopped scan's), the trailers, and closes the files. Returns
 * true, or false after "runspace: cannot write 'FILE': REASON" on stderr. f may be NULL. */
bool scan_files_close(scan_files *f, const rs_scan_summary *sum, bool stopped);

/* The ports a scan probes as a list with ranges ("22,80,1000-2000"), in a new string (free);
 * *count gets how many. NULL when out of memory. */
char *scan_port_list(const rs_scan *scan, unsigned *count);

#endif
