# green.py — gdb helper for libgreen.
#
#   (gdb) source tools/gdb/green.py
#   (gdb) info green            the green threads of the selected OS thread's hub
#   (gdb) green bt ID           backtrace of green thread ID (suspended ones included)
#
# It reads the hub through the thread-local green__tls_hub and walks its control-block
# chunks (struct block_chunk, its first `carved` blocks; a block is in use when its
# state is not GS_FREE), so it needs libgreen's debug info. `info green` works on a live
# process and on a core file. `green bt` on a suspended green thread loads the registers
# green_ctx_swap saved on its stack (x86-64: rbp, rbx, r12-r15 and the return address
# above the FP control word) into frame 0, prints the backtrace and puts the real
# registers back; that needs a live process (a core file's registers cannot be
# written). Shared-stack green threads whose frames are copied off the shared stack
# cannot be walked in place: use green_dump() from the program for those.
#
# Without libgreen's debug info (a Release build, a distribution's stripped package) the
# commands say in one line what is missing and how to get it.

import gdb

INLINE_STACK = 128
STATES = ["free", "new", "running", "suspended", "ready", "waiting", "dead", "moving"]
KINDS = ["park", "sleep", "fd", "join", "event", "future", "semaphore", "mutex", "cond",
         "channel", "group", "threadpool", "file", "signal", "resolve"]
GF_ROOT, GF_SHARED, GF_STARTED, GF_SPAWNED = 1, 2, 32, 128


NEED_DEBUG_INFO = ("libgreen's debug info is not loaded (%s): build libgreen with -g "
                   "(cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo, or Debug) or install its debug "
                   "symbols, then load the program again")


def _hub():
    """The selected OS thread's hub; one line of gdb.GdbError for what is missing."""
    try:
        gdb.lookup_type("struct green")
        gdb.lookup_type("struct green_hub")
    except gdb.error:
        try:
            gdb.parse_and_eval("&green__tls_hub")
            what = "the types struct green and struct green_hub are unknown"
        except gdb.error:
            what = "no symbol green__tls_hub: libgreen is not in this program, or is stripped"
        raise gdb.GdbError(NEED_DEBUG_INFO % what)
    try:
        h = gdb.parse_and_eval("green__tls_hub")
        if int(h) == 0:
            raise gdb.GdbError("this OS thread has no libgreen hub")
    except gdb.error as e:
        raise gdb.GdbError("libgreen: cannot read this thread's hub (%s)" % str(e).splitlines()[0])
    return h


def _field_offset(t, name):
    for f in t.fields():
        if f.name == name:
            return f.bitpos // 8
    raise gdb.GdbError("struct green has no field " + name)


def greens():
    """Every green thread of the selected thread's hub, as gdb.Values of struct green."""
    h = _hub()
    gtype = gdb.lookup_type("struct green")
    state_off = _field_offset(gtype, "state")
    inf = gdb.selected_inferior()
    left = int(h["alive"]) + 1
    c = h["chunks"]
    while int(c) != 0 and left > 0:
        bsize = gtype.sizeof + (INLINE_STACK if int(c["shared"]) else 0)
        base = int(c["base"])
        n = int(c["carved"])  # the blocks handed out so far; the rest are untouched
        mem = bytes(inf.read_memory(base, n * bsize)) if n else b""
        for i in range(n):
            if left == 0:
                break
            if mem[i * bsize + state_off] != 0:
                g = gdb.Value(base + i * bsize).cast(gtype.pointer()).dereference()
                if int(g["hub"]) != int(h):
                    continue  # moved to another hub of the group (src/hubs.c)
                left -= 1
                yield g
        c = c["next"]


def _name(g):
    ext = g["ext"]
    if int(ext) != 0 and int(ext["name"]) != 0:
        return ext["name"].string()
    return "root" if int(g["flags"]) & GF_ROOT else ""


def _describe(h, g):
    state = int(g["state"])
    flags = int(g["flags"])
    s = 'green %d "%s" state=%s' % (int(g["id"]), _name(g), STATES[state] if state < 8 else "?")
    if int(g.address) == int(h["current"]):
        s += " (current)"
    if state == 5 and flags & GF_STARTED:
        k = int(g["dbg"]["kind"])
        s += " on=%s" % (KINDS[k] if k < len(KINDS) else "?")
        if KINDS[k] in ("fd", "file", "signal"):
            s += " %s=%d" % ("signo" if KINDS[k] == "signal" else "fd", int(g["arg"].cast(gdb.lookup_type("long"))))
        elif int(g["arg"]) != 0 and KINDS[k] not in ("sleep", "park"):
            s += " obj=0x%x" % int(g["arg"])
    if flags & GF_SPAWNED:
        s += " spawner=%d" % int(g["spawner"])
    s += " stack=%s" % ("root" if flags & GF_ROOT else "shared" if flags & GF_SHARED else "dedicated")
    return s


def _one_line_errors(invoke):
    """A command whose gdb errors (memory, registers) end in one line, not a traceback."""
    def wrapped(self, arg, from_tty):
        try:
            return invoke(self, arg, from_tty)
        except gdb.GdbError:
            raise
        except gdb.error as e:
            raise gdb.GdbError("libgreen: %s" % str(e).splitlines()[0])
    return wrapped


class InfoGreen(gdb.Command):
    """List the green threads of the selected OS thread's libgreen hub."""

    def __init__(self):
        super().__init__("info green", gdb.COMMAND_STATUS)

    @_one_line_errors
    def invoke(self, arg, from_tty):
        h = _hub()
        n = 0
        for g in greens():
            gdb.write(_describe(h, g) + "\n")
            n += 1
        gdb.write("%d green threads (root included), hub 0x%x, switches=%d\n"
                  % (n, int(h), int(h["switches"])))


class Green(gdb.Command):
    """libgreen commands: green bt ID."""

    def __init__(self):
        super().__init__("green", gdb.COMMAND_USER, prefix=True)


REGS = ["rsp", "rip", "rbp", "rbx", "r12", "r13", "r14", "r15"]


class GreenBt(gdb.Command):
    """green bt ID: backtrace of the green thread with that id."""

    def __init__(self):
        super().__init__("green bt", gdb.COMMAND_STACK)

    @_one_line_errors
    def invoke(self, arg, from_tty):
        try:
            want = int(arg.split()[0])
        except (IndexError, ValueError):
            raise gdb.GdbError("usage: green bt ID")
        h = _hub()
        g = next((x for x in greens() if int(x["id"]) == want), None)
        if g is None:
            raise gdb.GdbError("no green thread %d in this hub" % want)
        if int(g.address) == int(h["current"]):
            gdb.execute("bt")
            return
        flags = int(g["flags"])
        if not flags & GF_STARTED or int(g["state"]) == 6:
            gdb.write("green thread %d has no frames (not started, or dead)\n" % want)
            return
        if flags & GF_SHARED and int(h["shared"]["owner"]) != int(g.address):
            gdb.write("green thread %d: frames copied off the shared stack; use green_dump()\n" % want)
            return
        arch = gdb.selected_frame().architecture().name()
        if "x86-64" not in arch:
            raise gdb.GdbError("green bt: only x86-64 is supported")
        sp = int(g["ctx"]["sp"])
        u64 = gdb.lookup_type("unsigned long").pointer()
        words = [int(gdb.Value(sp + 8 * i).cast(u64).dereference()) for i in range(8)]
        new = {"r15": words[1], "r14": words[2], "r13": words[3], "r12": words[4],
               "rbx": words[5], "rbp": words[6], "rip": words[7], "rsp": sp + 64}
        gdb.execute("frame 0", to_string=True)
        frame = gdb.selected_frame()
        old = {r: int(frame.read_register(r)) for r in REGS}
        try:
            for r in REGS:
                gdb.execute("set $%s = %d" % (r, new[r]), to_string=True)
            gdb.execute("bt")
        finally:
            for r in REGS:
                gdb.execute("set $%s = %d" % (r, old[r]), to_string=True)
            gdb.execute("frame 0", to_string=True)


InfoGreen()
Green()
GreenBt()
