"""Frames for the data-path integrity tests (issue 14), built with scapy.

  frames.py corpus IFACE SRC_MAC GROUP PORT N   send the malformed-frame corpus
  frames.py vlan IFACE SRC_MAC GROUP PORT VID:N,...  send N frames tagged VID
  frames.py tun NAME GROUP PORT N [decoy]        open tun NAME, write N IPv4
                                                datagrams (decoy: packets that
                                                read as Ethernet would look
                                                like a datagram to GROUP:PORT)
  frames.py sink IFACE GROUP PORT IDLE          print one JSON line per UDP
                                                frame to GROUP:PORT, until
                                                stdin closes and IDLE seconds
                                                pass without one
"""
import hashlib, json, os, socket, struct, sys, time

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def group_mac(g):
    o = socket.inet_aton(g)
    return "01:00:5e:%02x:%02x:%02x" % (o[1] & 0x7f, o[2], o[3])

def corpus(src_mac, group, port, n):
    """(kind, frame bytes) for each case; the payload names the kind."""
    from scapy.all import Ether, IP, UDP, TCP, Dot1Q, Dot1AD, Raw, IPOption_Router_Alert
    dst = group_mac(group)
    src = "10.77.0.1"
    out = []
    def eth(**kw):
        return Ether(src=src_mac, dst=kw.pop("dst", dst))
    for i in range(n):
        def pl(kind, extra=b""):
            return Raw(b"%s-%d-" % (kind.encode(), i) + extra)
        def udp_frame(kind, ip=None, udp=None, extra=b"", dst_mac=None):
            ip = ip or IP(src=src, dst=group, ttl=9)
            udp = udp or UDP(sport=4321, dport=port)
            return bytes((eth(dst=dst_mac or dst)) / ip / udp / pl(kind, extra))
        out.append(("valid", udp_frame("valid")))
        out.append(("csum0", udp_frame("csum0", udp=UDP(sport=4321, dport=port, chksum=0))))
        f = bytearray(udp_frame("badudp"))
        f[-1] ^= 0xff
        out.append(("udp_checksum", bytes(f)))
        out.append(("ip_checksum", udp_frame("badip", ip=IP(src=src, dst=group, ttl=9, chksum=0x1234))))
        out.append(("udp_length_long", udp_frame("udplong", udp=UDP(sport=4321, dport=port, len=200))))
        out.append(("udp_length_short", udp_frame("udpshort", udp=UDP(sport=4321, dport=port, len=4))))
        out.append(("udp_length_zero", udp_frame("udpzero", udp=UDP(sport=4321, dport=port, len=0))))
        out.append(("trailing", udp_frame("trailing") + b"\xee" * 40))
        out.append(("truncated", udp_frame("truncated", extra=b"x" * 40)[:-20]))
        out.append(("oversize", udp_frame("oversize", extra=b"o" * 9300)))
        out.append(("ttl_zero", udp_frame("ttl0", ip=IP(src=src, dst=group, ttl=0))))
        for m in ["255.255.255.255", "127.0.0.1", "0.0.0.0", "224.0.0.7"]:
            out.append(("martian", udp_frame("martian" + m, ip=IP(src=m, dst=group, ttl=9))))
        out.append(("ihl4", bytes(bytearray(udp_frame("ihl4"))[:14] + bytes([0x44]) + udp_frame("ihl4")[15:])))
        out.append(("vlan10", bytes(eth() / Dot1Q(vlan=10) / IP(src=src, dst=group, ttl=9) / UDP(sport=4321, dport=port) / pl("vlan10"))))
        out.append(("vlan0", bytes(eth() / Dot1Q(vlan=0, prio=5) / IP(src=src, dst=group, ttl=9) / UDP(sport=4321, dport=port) / pl("vlan0"))))
        out.append(("qinq", bytes(eth() / Dot1AD(vlan=5) / Dot1Q(vlan=10) / IP(src=src, dst=group, ttl=9) / UDP(sport=4321, dport=port) / pl("qinq"))))
        out.append(("options", udp_frame("options", ip=IP(src=src, dst=group, ttl=9, options=[IPOption_Router_Alert()]))))
        out.append(("fragment_first", udp_frame("frag1", ip=IP(src=src, dst=group, ttl=9, flags="MF", id=77 + i))))
        out.append(("fragment_later", udp_frame("frag2", ip=IP(src=src, dst=group, ttl=9, frag=10, id=77 + i))))
        out.append(("tcp", bytes(eth() / IP(src=src, dst=group, ttl=9) / TCP(sport=4321, dport=port) / pl("tcp"))))
        out.append(("foreign_mac", udp_frame("foreign", dst_mac="02:00:00:00:00:99")))
    return out

def send(iface, frames):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for _, f in frames:
        s.send(f)
        time.sleep(0.002)

def sink(iface, group, port, idle):
    """Captures until stdin closes (the sender is done) and then IDLE
    seconds pass without a frame."""
    import select
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    print("ready", flush=True)
    done_at = None
    last = time.time()
    start = time.time()
    while True:
        now = time.time()
        if done_at is not None and now - max(done_at, last) > idle:
            break
        if now - start > 120:
            break
        watch = [s] if done_at is not None else [s, sys.stdin]
        r, _, _ = select.select(watch, [], [], 0.2)
        if sys.stdin in r:
            if not sys.stdin.readline():
                done_at = time.time()
            continue
        if s not in r:
            continue
        f, addr = s.recvfrom(65536)
        last = time.time()
        if addr[2] == socket.PACKET_OUTGOING or f[12:14] != b"\x08\x00":
            continue
        ip = f[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17 or socket.inet_ntoa(ip[16:20]) != group:
            continue
        tot = struct.unpack("!H", ip[2:4])[0]
        udp = ip[ihl:tot]
        if struct.unpack("!H", udp[2:4])[0] != port:
            continue
        src = socket.inet_ntoa(ip[12:16])
        ph = socket.inet_aton(src) + socket.inet_aton(group) + struct.pack("!BBH", 0, 17, len(udp))
        c = struct.unpack("!H", udp[6:8])[0]
        payload = udp[8:struct.unpack("!H", udp[4:6])[0]]
        print(json.dumps({
            "frame_len": len(f), "ip_total_len": tot, "ttl": ip[8],
            "ip_checksum_ok": csum(ip[:ihl]) == 0,
            "udp_checksum": c, "udp_checksum_ok": c == 0 or csum(ph + udp) == 0,
            "kind": payload.split(b"-")[0].decode(errors="replace"),
            "payload_sha": hashlib.sha256(payload).hexdigest()[:16],
        }), flush=True)

def tun(name, group, port, n, decoy):
    import fcntl
    TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454ca, 0x0001, 0x1000
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    print("ready", flush=True)
    sys.stdin.readline()  # wait until told to send
    def ip_udp(src, dst, dport, payload, ttl=9, ident=1):
        udp = struct.pack("!HHHH", 4321, dport, 8 + len(payload), 0) + payload
        ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, len(udp))
        c = csum(ph + udp) or 0xffff
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0x4000, ttl, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        return ip + udp
    for i in range(n):
        if decoy:
            # Read from byte 0 as if an Ethernet header came first, this
            # packet is an IPv4/UDP datagram to group:port (issue 14, item
            # 2): the outer source 8.0.69.0 gives "EtherType" 08 00 and the
            # first byte 45 of a fake header, whose next five bytes (00, then
            # total length 92 and id 0) are the outer destination 0.92.0.0;
            # the rest of the fake datagram is the outer payload, from
            # byte 6 of its header on.
            inner = ip_udp("10.9.9.9", group, port, b"decoy-%02d" % i + b"d" * 56, ident=0)
            assert inner[:6] == bytes([0x45, 0, 0, 92, 0, 0]), inner[:6]
            body = inner[6:]
            outer = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(body), 2, 0, 9, 253, 0)
                              + socket.inet_aton("8.0.69.0") + socket.inet_aton("0.92.0.0"))
            outer[10:12] = struct.pack("!H", csum(bytes(outer)))
            os.write(fd, bytes(outer) + body)
        else:
            os.write(fd, ip_udp("10.9.9.9", group, port, b"tun-%d" % i))
        time.sleep(0.002)
    print("sent", flush=True)
    sys.stdin.readline()

mode = sys.argv[1]
if mode == "corpus":
    iface, mac, group, port, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    frames = corpus(mac, group, port, n)
    send(iface, frames)
    kinds = {}
    for k, _ in frames:
        kinds[k] = kinds.get(k, 0) + 1
    print(json.dumps(kinds))
elif mode == "vlan":
    # VIDS: "vid:count,..." e.g. "10:4,20:4,0:2"
    from scapy.all import Ether, IP, UDP, Dot1Q, Raw
    iface, mac, group, port, vids = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
    frames = []
    for item in vids.split(","):
        vid, n = (int(x) for x in item.split(":"))
        frames += [("vlan", bytes(Ether(src=mac, dst=group_mac(group)) / Dot1Q(vlan=vid) / IP(src="10.77.0.1", dst=group, ttl=9) / UDP(sport=4321, dport=port) / Raw(b"vlan%d-%d" % (vid, i)))) for i in range(n)]
    send(iface, frames)
elif mode == "sink":
    sink(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
elif mode == "tun":
    tun(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), len(sys.argv) > 6)
