/* workers.c — a bounded pool of green threads fed by a channel.
 *
 * The producer sends jobs into a buffered channel; a pool of at most 4 workers takes
 * them, "works" (sleeps a little, as if waiting on a server), and sends results back.
 * Closing the jobs channel tells the workers to finish. */
#include <green.h>
#include <stdio.h>

enum { JOBS = 100, WORKERS = 4 };

struct pipes {
    green_chan_t *jobs, *results;
};

static void *worker(void *arg)
{
    struct pipes *p = arg;
    int job;
    while (green_chan_recv(p->jobs, &job, -1) == 0) { /* EPIPE once closed and drained */
        green_sleep(1);                               /* the "I/O" */
        int result = job * job;
        green_chan_send(p->results, &result, -1);
    }
    return NULL;
}

int main(void)
{
    struct pipes p = {green_chan_new(sizeof(int), 16), green_chan_new(sizeof(int), JOBS)};
    green_group_t pool;
    green_group_init(&pool, WORKERS);
    for (int i = 0; i < WORKERS; i++)
        green_group_spawn(&pool, worker, &p, -1);
    for (int job = 1; job <= JOBS; job++)
        green_chan_send(p.jobs, &job, -1);            /* parks while the buffer is full */
    green_chan_close(p.jobs);
    green_group_join(&pool, -1);
    long sum = 0;
    int result;
    while (green_chan_recv(p.results, &result, 0) == 0)
        sum += result;
    printf("%d jobs done by %d workers, sum of squares %ld\n", JOBS, WORKERS, sum);
    green_group_destroy(&pool);
    green_chan_free(p.jobs);
    green_chan_free(p.results);
    return sum == (long)JOBS * (JOBS + 1) * (2 * JOBS + 1) / 6 ? 0 : 1;
}
