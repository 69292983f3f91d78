/*
 * The backends' periodic functions (struct cs_backend.periodic): on the active node,
 * every config periodic_interval, one internal request per mount whose backend has one,
 * never two at once for the same mount. Driven by the HA tick (server/ha.c), so it needs
 * no handle of its own.
 */
#ifndef CS_SERVER_PERIODIC_H
#define CS_SERVER_PERIODIC_H

#include <stdint.h>

struct cs_core;

/* Start the runs that are due. Loop thread; cheap when nothing is due. */
void cs_periodic_tick(struct cs_core *core);
/* For tests and metrics: runs started and runs that failed since start. */
uint64_t cs_periodic_runs(struct cs_core *core);
uint64_t cs_periodic_failures(struct cs_core *core);

#endif
