/*
 * hub.h — the hub's life (layer 4, hub.c): the process-wide registry of hubs, and what
 * the hub's birth asks of the layers above it. The hub itself (struct green_hub) and
 * the thread-local pointer to it are in core.h, made by green__hub().
 *
 * Invariants: a hub is in the registry from its birth until its thread starts tearing
 * it down; whoever walks the registry holds its lock, so a hub it sees is not freed
 * meanwhile; signal handlers only try the lock.
 */
#ifndef GREEN_HUB_H
#define GREEN_HUB_H

#include "core.h"

/* ---- the registry of every hub ---- */
void green__hubs_lock(void);
int green__hubs_trylock(void);                    /* 0, or -1 when held */
void green__hubs_unlock(void);
struct green_hub *green__hubs(void);              /* under the lock; then h->reg_next */

/* ---- called by the hub's birth, defined above it ---- */
/* Once, when the first hub of the process is made: what the environment asks of the
 * debug layer (GREEN_DUMP_SIGNAL, GREEN_MONITOR_MS; dump_signal.c). */
void green__debug_init(void);
/* fork(): the child forgets the group of hubs (hubs.c). */
void green__hubs_fork_child(void);

#endif /* GREEN_HUB_H */
