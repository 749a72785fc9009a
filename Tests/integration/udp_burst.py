#!/usr/bin/env python3
"""Numbered small UDP datagrams for udp_offload.sh.

send HOST PORT COUNT SIZE [gso|nodf]: COUNT datagrams of SIZE bytes (a 4-byte number, then bytes
  that depend on it), in bursts of 32 with a millisecond between bursts; with gso, each burst leaves
  in one sendmsg with UDP_SEGMENT (the kernel hands the TUN one UDP super-packet per burst); with
  nodf, without DF (IP_PMTUDISC_DONT: a path smaller than the datagram fragments it).
recv HOST PORT COUNT SIZE TIMEOUT: prints "received N in_order X intact Y" once COUNT arrived or
  TIMEOUT seconds passed without one.
"""
import socket
import struct
import sys
import time

UDP_SEGMENT = 103
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0
BURST = 32


def body(i, size):
    return struct.pack("!I", i) + bytes((i * 7 + k) & 0xff for k in range(size - 4))


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def send(host, port, count, size, mode):
    gso = mode == "gso"
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    if mode == "nodf":
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
    s.connect((host, port))
    if gso:
        s.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, size)
    bodies = [body(i, size) for i in range(count)]  # made first: a burst leaves back to back
    for start in range(0, count, BURST):
        burst = bodies[start:start + BURST]
        if gso:
            s.send(b"".join(burst))
        else:
            for b in burst:
                s.send(b)
        time.sleep(0.001)


def recv(host, port, count, size, timeout):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE: nothing lost to the buffer
    s.bind((host, port))
    s.settimeout(timeout)
    got, in_order, intact, last = 0, 0, 0, -1
    while got < count:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        got += 1
        i = struct.unpack("!I", d[:4])[0] if len(d) >= 4 else -1
        in_order += i == last + 1
        last = i
        intact += d == body(i, size)
    print(f"received {got} in_order {in_order} intact {intact}", flush=True)


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "send":
        mode = a[6] if len(a) > 6 else ""
        if mode not in ("", "gso", "nodf"):
            sys.exit(f"unknown send mode {mode!r}")
        send(a[2], int(a[3]), int(a[4]), int(a[5]), mode)
    else:
        recv(a[2], int(a[3]), int(a[4]), int(a[5]), float(a[6]))
