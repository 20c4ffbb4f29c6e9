/* chat.c — a line-based chat room: every line a client sends goes to every other client.
 *
 * usage: chat PORT   serve until Ctrl-C (try it with a few `nc localhost PORT`)
 *        chat        the test: three clients in this process join, talk, and each must
 *                    hear exactly the other two
 *
 * Nothing is shared between connections; they talk through channels. One green thread,
 * the room, owns the list of members; connections send it what happens (join, say,
 * leave) on its inbox channel. Each member has an outbox channel of lines, drained to
 * its socket by a writer green thread of its own, so a client slow to read delays only
 * itself: when its outbox is full the room drops the line for it rather than wait.
 * The writer writes to its own dup of the socket and closes it when done, so its fd
 * stays valid however the connection's handler ends. Lines are heap strings; whoever
 * takes one from a channel frees it. */
#include <green.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { LINE_MAX_LEN = 1024, OUTBOX = 64, INBOX = 1024, TIMEOUT_MS = 5000 };

/* ---- the room ---- */

enum { JOIN, SAY, LEAVE };
struct event {
    int kind;
    int id;
    green_chan_t *outbox;  /* JOIN */
    char *text;            /* SAY */
};

struct member {
    struct member *next;
    int id;
    green_chan_t *outbox;
};

struct room {
    green_chan_t *inbox;   /* of struct event */
    int next_id;           /* handed out by the handlers (same hub: no race) */
    struct member *members;
};

/* Hand a copy of text to m; dropped if m's outbox is full (see the top). */
static void deliver(struct member *m, const char *text)
{
    char *copy = strdup(text);
    if (copy && green_chan_send(m->outbox, &copy, 0) != 0)
        free(copy);
}

static void room_say(struct room *r, int from, char *text)
{
    char line[LINE_MAX_LEN + 32];
    snprintf(line, sizeof line, "%d: %s", from, text);
    for (struct member *m = r->members; m; m = m->next)
        if (m->id != from)
            deliver(m, line);
    free(text);
}

static void room_join(struct room *r, int id, green_chan_t *outbox)
{
    int n = 1;
    for (struct member *m = r->members; m; m = m->next)
        n++;
    struct member *m = malloc(sizeof *m);
    if (!m) {
        green_chan_close(outbox); /* its writer ends: the client is turned away */
        return;
    }
    *m = (struct member){r->members, id, outbox};
    r->members = m;
    char hello[64];
    snprintf(hello, sizeof hello, "* you are %d; %d here\n", id, n);
    deliver(m, hello);
}

/* The member goes; closing its outbox tells its writer to finish. */
static void room_leave(struct room *r, int id)
{
    for (struct member **p = &r->members; *p; p = &(*p)->next)
        if ((*p)->id == id) {
            struct member *m = *p;
            *p = m->next;
            green_chan_close(m->outbox);
            free(m);
            return;
        }
}

/* Until the inbox is closed (shutdown); then every member's writer is told to finish. */
static void *room_main(void *arg)
{
    struct room *r = arg;
    struct event ev;
    while (green_chan_recv(r->inbox, &ev, -1) == 0) {
        if (ev.kind == JOIN)
            room_join(r, ev.id, ev.outbox);
        else if (ev.kind == SAY)
            room_say(r, ev.id, ev.text);
        else
            room_leave(r, ev.id);
    }
    while (r->members)
        room_leave(r, r->members->id);
    return NULL;
}

/* ---- a connection ---- */

struct writer {
    int fd;                /* a dup of the connection: the writer's own */
    green_chan_t *outbox;
};

/* Drains the outbox to the socket until the room closes it; lines that cannot be
 * written (the client went away) are still taken and freed. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    int ok = 1;
    char *line;
    while (green_chan_recv(w->outbox, &line, -1) == 0) {
        size_t len = strlen(line);
        ok = ok && green_write(w->fd, line, len, green_after(TIMEOUT_MS)) == (ssize_t)len;
        free(line);
    }
    green_close(w->fd);
    green_chan_free(w->outbox);
    free(w);
    return NULL;
}

/* A writer for fd with a fresh outbox; NULL + errno. */
static green_chan_t *writer_start(int fd)
{
    struct writer *w = malloc(sizeof *w);
    if (!w)
        return NULL;
    w->outbox = green_chan_new(sizeof(char *), OUTBOX);
    w->fd = w->outbox ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    green_t t = w->fd >= 0 ? green_spawn(writer_main, w) : NULL;
    if (!t) {
        if (w->fd >= 0)
            close(w->fd);
        if (w->outbox)
            green_chan_free(w->outbox);
        free(w);
        return NULL;
    }
    green_detach(t);
    return w->outbox;
}

/* Tell the room that member id said text[0, len). */
static void say(struct room *r, int id, const char *text, size_t len)
{
    struct event ev = {SAY, id, NULL, strndup(text, len)};
    if (ev.text && green_chan_send(r->inbox, &ev, -1) != 0)
        free(ev.text);
}

/* The handler: join, send the room every line read, leave at EOF. */
static void member(int fd, void *arg)
{
    struct room *r = arg;
    green_chan_t *outbox = writer_start(fd);
    if (!outbox)
        return;
    int id = ++r->next_id;
    struct event ev = {JOIN, id, outbox, NULL};
    green_chan_send(r->inbox, &ev, -1);
    char buf[LINE_MAX_LEN];
    size_t len = 0;
    ssize_t n;
    while ((n = green_read(fd, buf + len, sizeof buf - len, -1)) > 0) {
        len += (size_t)n;
        size_t start = 0;
        for (char *nl; (nl = memchr(buf + start, '\n', len - start)); start = (size_t)(nl - buf) + 1)
            say(r, id, buf + start, (size_t)(nl - buf) + 1 - start);
        if (start == 0 && len == sizeof buf) { /* a line longer than the buffer goes in pieces */
            say(r, id, buf, len);
            start = len;
        }
        len -= start;
        memmove(buf, buf + start, len);
    }
    /* a buffered inbox takes this without waiting, even from a handler being killed */
    ev = (struct event){LEAVE, id, NULL, NULL};
    green_chan_send(r->inbox, &ev, -1);
}

/* ---- the test: three clients ---- */

/* One line (up to cap - 1 bytes), byte by byte: simple, and enough for a test. */
static int read_line(int fd, char *line, size_t cap)
{
    size_t n = 0;
    while (n < cap - 1 && green_read(fd, line + n, 1, green_after(TIMEOUT_MS)) == 1)
        if (line[n++] == '\n')
            break;
    line[n] = '\0';
    return n > 0 && line[n - 1] == '\n' ? 0 : -1;
}

static int test(void)
{
    enum { CLIENTS = 3 };
    struct room room = {green_chan_new(sizeof(struct event), INBOX), 0, NULL};
    green_t room_thread = green_spawn(room_main, &room);
    int lfd = green_tcp_listen("127.0.0.1", "0", 128);
    green_server_t *srv = lfd >= 0 ? green_serve(lfd, member, &room, NULL) : NULL;
    if (!srv || !room_thread)
        return perror("serve"), 1;
    char port[16], line[LINE_MAX_LEN];
    snprintf(port, sizeof port, "%d", green_socket_port(lfd));
    int fd[CLIENTS], failed = 0;
    for (int i = 0; i < CLIENTS; i++) { /* the greeting says the room has taken us in */
        fd[i] = green_tcp_connect("127.0.0.1", port, green_after(TIMEOUT_MS));
        failed |= fd[i] < 0 || read_line(fd[i], line, sizeof line) != 0;
        printf("client %d: %s", i + 1, line);
    }
    if (failed)
        return 1;
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(line, sizeof line, "hello from client %d\n", i + 1);
        green_write(fd[i], line, strlen(line), green_after(TIMEOUT_MS));
    }
    for (int i = 0; i < CLIENTS; i++) {
        int heard = 0; /* bit j: client j's line */
        for (int k = 0; k < CLIENTS - 1 && read_line(fd[i], line, sizeof line) == 0; k++) {
            int id, from;
            if (sscanf(line, "%d: hello from client %d", &id, &from) == 2 && id == from)
                heard |= 1 << (from - 1);
            printf("client %d heard %s", i + 1, line);
        }
        failed |= heard != ((1 << CLIENTS) - 1) - (1 << i);
    }
    for (int i = 0; i < CLIENTS; i++)
        green_close(fd[i]);
    green_server_stop(srv, green_after(TIMEOUT_MS));
    green_close(lfd);
    green_chan_close(room.inbox);
    green_join(room_thread, NULL, -1);
    green_chan_free(room.inbox);
    printf("%s\n", failed ? "FAILED: someone heard the wrong lines" : "everyone heard the other two");
    return failed;
}

static int serve(const char *port)
{
    struct room room = {green_chan_new(sizeof(struct event), INBOX), 0, NULL};
    green_t room_thread = green_spawn(room_main, &room);
    int lfd = green_tcp_listen(NULL, port, 128);
    green_server_t *srv = lfd >= 0 && room_thread ? green_serve(lfd, member, &room, NULL) : NULL;
    if (!srv)
        return perror("serve"), 1;
    printf("chat room on port %d; join with: nc localhost %d (Ctrl-C stops it)\n", green_socket_port(lfd),
           green_socket_port(lfd));
    fflush(stdout);
    green_signal_wait(SIGINT, -1);
    green_server_stop(srv, green_after(1000));
    green_close(lfd);
    green_chan_close(room.inbox);
    green_join(room_thread, NULL, -1);
    green_chan_free(room.inbox);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 1)
        return test();
    if (argc == 2 && argv[1][0] != '-')
        return serve(argv[1]);
    fprintf(stderr, "usage: chat [PORT]\n");
    return 2;
}
