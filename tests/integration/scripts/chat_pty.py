#!/usr/bin/env python3
"""Drives `l04ctl chat` through a pseudo-terminal, as a person would: a turn,
Ctrl-C in the middle of a streamed answer (the session stays), /usage, a
multi-line block, then Ctrl-D. Prints OK and exits 0 when every step went as
expected; otherwise says which step failed and exits 1. Bounded: every wait
has a timeout, and the child is killed if it is still there at the end."""
import os
import pty
import select
import signal
import sys
import termios
import time

l04ctl = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(l04ctl, [l04ctl, "chat", "-m", "mock", "-o", "chunk_delay_ms=150"])  # slow enough that Ctrl-C lands mid-answer on a loaded machine

buf = b""


def fail(msg):
    print("FAIL: " + msg + "\n--- output so far ---\n" + buf.decode(errors="replace")[-1500:])
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    sys.exit(1)


def expect(s, timeout=20.0):
    global buf
    want = s.encode()
    end = time.time() + timeout
    while want not in buf:
        left = end - time.time()
        if left <= 0:
            fail("timed out waiting for %r" % s)
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:
            fail("the session ended while waiting for %r" % s)
        if not data:
            fail("end of output while waiting for %r" % s)
        buf += data
    i = buf.index(want) + len(want)
    seen = buf[:i]
    buf = buf[i:]
    return seen


def send(s):
    os.write(fd, s.encode())


def wait_line_editor():
    """Waits until libedit has put the terminal in raw mode (ICANON off).
    libedit prints its prompt, then switches: an EOF typed in between goes
    through the kernel's canonical line discipline and reaches libedit as
    a character on the line (shown as "^D"), so the line is no longer
    empty and every later Ctrl-D only rings the bell. A person is never
    that fast; a script is. The pty master reports the slave's modes."""
    global buf
    end = time.time() + 20
    while True:
        try:
            canonical = termios.tcgetattr(fd)[3] & termios.ICANON
        except termios.error:
            fail("the terminal went away while waiting for the line editor")
        if not canonical:
            return
        if time.time() >= end:
            fail("the line editor never switched the terminal to raw mode")
        r, _, _ = select.select([fd], [], [], 0.01)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                fail("the session ended while waiting for the line editor")
            if not data:
                fail("end of output while waiting for the line editor")
            buf += data


expect("> ")
send("first question\r")
expect('Mock answer to "first question"')
expect("> ")

send("tell me a long story\r")
expect("Mock answer")      # the answer has started streaming
send("\x03")              # Ctrl-C: cancels it, stays in the session
expect("(cancelled)")
expect("> ")

send("/usage\r")
expect("1 turn(s)")
expect("> ")

send('"""\r')
send("line a\r")
send("line b\r")
send('"""\r')
expect('Mock answer to "line a')
expect("> ")

wait_line_editor()
send("\x04")              # Ctrl-D: leaves
end = time.time() + 20
while time.time() < end:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    try:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            os.read(fd, 4096)
    except OSError:
        pass
else:
    fail("l04ctl chat did not exit after Ctrl-D")
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail("l04ctl chat exited with status %r" % status)
print("OK")
