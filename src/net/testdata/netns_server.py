"""Servers for the proxy tests, run inside a private network namespace (unshare -n).

Ports (all on 0.0.0.0 inside the namespace):
  BASE+0 echo:   echoes every byte as it arrives; shuts down its write side at the client's EOF
  BASE+1 digest: reads to EOF, then answers "<sha256 hex> <length>\n" and closes
  BASE+2 source: reads a decimal length and a newline, sends that many bytes of a seeded
                 stream, then closes
  BASE+3 flood:  writes without end; when a write has been blocked for a second, prints
                 "blocked <bytes written so far>" on stdout (once per connection)
  BASE+0/udp echo: sends every datagram back to its sender
Prints "ready" when every socket listens.
"""
import hashlib
import socket
import sys
import threading

BASE = int(sys.argv[1])


def loopback_up():
    """Brings lo up in this fresh namespace (no dependency on iproute2's `ip`)."""
    import fcntl
    import struct

    siocsifflags = 0x8914
    iff_up_loopback_running = 0x1 | 0x8 | 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH22x", b"lo", iff_up_loopback_running))


loopback_up()


def stream(n):
    """Deterministic bytes: sha256 counter blocks, identical to the test's generator."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(counter.to_bytes(8, "little")).digest() * 1024
        counter += 1
    return bytes(out[:n])


def echo(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            conn.shutdown(socket.SHUT_WR)
            break
        conn.sendall(data)


def digest(conn):
    h = hashlib.sha256()
    n = 0
    while True:
        data = conn.recv(65536)
        if not data:
            break
        h.update(data)
        n += len(data)
    conn.sendall(f"{h.hexdigest()} {n}\n".encode())


def source(conn):
    line = b""
    while not line.endswith(b"\n"):
        data = conn.recv(1)
        if not data:
            return
        line += data
    n = int(line)
    block = stream(min(n, 4 << 20))
    sent = 0
    while sent < n:
        chunk = block[: min(len(block), n - sent)]
        conn.sendall(chunk)
        sent += len(chunk)


def flood(conn):
    conn.settimeout(1.0)
    chunk = b"x" * 65536
    total = 0
    while True:
        try:
            total += conn.send(chunk)
        except socket.timeout:
            print(f"blocked {total}", flush=True)
            conn.settimeout(None)
            try:
                while True:
                    total += conn.send(chunk)
            except OSError:
                return
        except OSError:
            return


def serve(port, handler):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(512)

    def run(conn):
        try:
            handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def loop():
        while True:
            conn, _ = s.accept()
            threading.Thread(target=run, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def udp_echo(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))

    def loop():
        while True:
            data, addr = s.recvfrom(65536)
            s.sendto(data, addr)

    threading.Thread(target=loop, daemon=True).start()


for i, h in enumerate([echo, digest, source, flood]):
    serve(BASE + i, h)
udp_echo(BASE)
print("ready", flush=True)
sys.stdin.read()
