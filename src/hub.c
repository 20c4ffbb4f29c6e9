/*
 * hub.c — the hub's whole life (layer 4): one hub per OS thread, made on first use,
 * reached through a thread-local pointer, listed in the process-wide registry, torn
 * down when its thread exits, and replaced in a fork() child.
 *
 * The hub (struct green_hub, core.h) is what every layer keeps its per-thread state in;
 * this file makes it with its root green thread, the relay context and the alternate
 * signal stack, and at the end unmakes what the layers left in it (the scheduler's
 * loop, the wait layer's record cache, the stacks, the control blocks): owning the
 * hub's life, it calls each layer's per-hub setup and teardown, so it includes the
 * headers up to wait.h (5). The scheduler's own part (run queue, timers, poller) is
 * made lazily by sched.c when something first waits.
 *
 * Invariants:
 *  - green__tls_hub is the calling thread's hub or NULL; a hub is made only by its own
 *    thread, and only that thread ever changes it;
 *  - a hub is in the registry from its creation until its thread starts tearing it
 *    down; whoever walks the registry (monitor, dump signal) holds its lock, so a hub it
 *    sees is not freed meanwhile;
 *  - a hub that something outside may still wake (h->ext_refs: a pool job, another
 *    thread's channel) is never freed: its thread forgets it and the memory stays;
 *  - in a fork() child only the forking thread exists: the registry starts empty, and
 *    that thread gets a fresh hub whose root is the green thread that called fork().
 */
#include "hub.h"
#include "wait.h" /* the teardown of every layer's per-hub state (below it) */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* initial-exec: one instruction to reach, no __tls_get_addr call on the switch path */
__thread struct green_hub *green__tls_hub __attribute__((tls_model("initial-exec")));
__thread int green__passthrough __attribute__((tls_model("initial-exec")));

static pthread_key_t hub_key;
static pthread_once_t hub_once = PTHREAD_ONCE_INIT;
static pthread_once_t debug_once = PTHREAD_ONCE_INIT;

/* ---- the registry of hubs ---- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct green_hub *reg_head;

void green__hubs_lock(void) { green__sys.pthread_mutex_lock(&reg_lock); }
int green__hubs_trylock(void) { return green__sys.pthread_mutex_trylock(&reg_lock) == 0 ? 0 : -1; }
void green__hubs_unlock(void) { green__sys.pthread_mutex_unlock(&reg_lock); }
struct green_hub *green__hubs(void) { return reg_head; }

static void registry_add(struct green_hub *h)
{
    h->thread = (unsigned long)green__sys.pthread_self();
    h->tid = (int)green__sys.syscall(SYS_gettid);
    green__sys.pthread_mutex_lock(&reg_lock);
    h->reg_next = reg_head;
    reg_head = h;
    green__sys.pthread_mutex_unlock(&reg_lock);
}

static void registry_remove(struct green_hub *h)
{
    green__sys.pthread_mutex_lock(&reg_lock);
    for (struct green_hub **pp = &reg_head; *pp; pp = &(*pp)->reg_next)
        if (*pp == h) {
            *pp = h->reg_next;
            break;
        }
    green__sys.pthread_mutex_unlock(&reg_lock);
}

/* ---- birth ---- */

static void hub_free(void *p);
static void atfork_child(void);

static void hub_once_init(void)
{
    green__sys.pthread_key_create(&hub_key, hub_free); /* its destructor ends the hub */
    pthread_atfork(green__blocks_fork_hold, green__blocks_fork_release, atfork_child);
}

static struct green_hub *hub_make(void);

struct green_hub *green__hub(void)
{
    if (green__tls_hub)
        return green__tls_hub;
    if (green__passthrough) { /* reached again while being made (a wrapped malloc lock) */
        errno = EAGAIN;
        return NULL;
    }
    green__sys.pthread_once(&hub_once, hub_once_init);
    green__passthrough++;
    struct green_hub *h = hub_make();
    green__passthrough--;
    if (!h)
        return NULL;
    green__tls_hub = h;
    green__sys.pthread_setspecific(hub_key, h);
    registry_add(h);
    green__sys.pthread_once(&debug_once, green__debug_init);
    return h;
}

/* A new hub with its root (the calling thread), not yet this thread's: NULL when out of
 * memory. */
static struct green_hub *hub_make(void)
{
    /* line-aligned: other threads' fields have lines of their own (core.h) */
    struct green_hub *h = aligned_alloc(_Alignof(struct green_hub), sizeof *h);
    if (!h)
        return NULL;
    memset(h, 0, sizeof *h);
    green_list_init(&h->rq);
    struct green *root = green__block_new(h, 0);
    if (!root) {
        free(h);
        return NULL;
    }
    root->flags = GF_ROOT | GF_STARTED;
    root->state = GS_RUNNING;
    h->root = h->current = root;
    h->errno_p = &errno;
#if GREEN_TSAN
    root->tsan_fiber = green_tsan_current();
    h->relay_fiber = green_tsan_create();
#endif
    if (green__relay_init(h) != 0) {
        green__blocks_orphan(h); /* the root's chunk goes to the next hub */
        free(h);
        return NULL;
    }
    green__altstack_init(h);
#if GREEN_ASAN
    pthread_attr_t a;
    if (green__sys.pthread_getattr_np(green__sys.pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &h->root_lo, &h->root_size);
        pthread_attr_destroy(&a);
    }
#endif
    return h;
}

/* 1 when the calling OS thread has a hub; makes none. */
int green_private_hub_here(void) { return green__tls_hub != NULL && !green__passthrough; }

int green_private_hub_make(void)
{
    struct green_hub *h = green__tls_hub;
    if (h && h->poller)
        return 0;
    if (green__passthrough) {
        errno = EAGAIN;
        return -1;
    }
    return green__loop() ? 0 : -1;
}

/* ---- death: the OS thread exits ---- */

static void hub_free(void *p)
{
    struct green_hub *h = p;
    green__tls_hub = NULL;
    registry_remove(h);
    if (h->ext_refs || h->num || h->exported) {
        /* Something outside (a pool job, another thread) may still send this hub a
         * wake-up, or green threads of its blocks and stacks run on other hubs, or it is
         * a member of the group of hubs (whose members are never removed): keep its
         * object, and everything such a wake-up or green thread touches, alive. */
        return;
    }
    green__hub_loop_destroy(h);
    green__waiters_destroy(h);
    green__stacks_destroy(h);
    green__blocks_orphan(h);
    free(h);
}

/* ---- fork ---- */

/* fork(): the child continues with the calling green thread only. It becomes the root
 * of a fresh hub; the parent's hubs and green threads are abandoned in the child. */
static void atfork_child(void)
{
    green__blocks_fork_release();
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    reg_lock = fresh; /* its holder, if any, does not exist in the child */
    green__hubs_fork_child(); /* nor does the group of hubs */
    reg_head = NULL;  /* nor do the parent's other hubs */
    struct green_hub *old = green__tls_hub;
    if (!old)
        return;
    green__tls_hub = NULL;
    if (!green__hub())
        return;
    /* If it was running on a green thread's stack, it keeps using it; that stack is
     * never released in the child. */
    old->current = NULL;
}
