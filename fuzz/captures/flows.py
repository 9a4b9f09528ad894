#!/usr/bin/env python3
"""Splits a pcap of loopback TCP into one file per direction of each connection."""
import struct, sys, os, collections
pcap, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
data = open(pcap, 'rb').read()
magic = struct.unpack('<I', data[:4])[0]
le = magic in (0xa1b2c3d4, 0xa1b23c4d)
e = '<' if le else '>'
linktype = struct.unpack(e + 'I', data[20:24])[0]
off = 24
flows = collections.OrderedDict()
seen = set()
while off + 16 <= len(data):
    _, _, incl, _ = struct.unpack(e + 'IIII', data[off:off + 16]); off += 16
    pkt = data[off:off + incl]; off += incl
    if linktype == 1: pkt = pkt[14:]          # Ethernet
    elif linktype == 113: pkt = pkt[16:]      # Linux cooked
    elif linktype == 276: pkt = pkt[20:]      # Linux cooked v2
    if not pkt or pkt[0] >> 4 != 4: continue
    ihl = (pkt[0] & 15) * 4
    if pkt[9] != 6: continue
    total = struct.unpack('>H', pkt[2:4])[0]
    src, dst = pkt[12:16], pkt[16:20]
    tcp = pkt[ihl:total]
    sport, dport, seq = struct.unpack('>HHI', tcp[:8])
    doff = (tcp[12] >> 4) * 4
    payload = tcp[doff:]
    if not payload: continue
    key = (src, sport, dst, dport)
    if (key, seq) in seen: continue
    seen.add((key, seq))
    flows.setdefault(key, bytearray()).extend(payload)
for i, ((src, sport, dst, dport), body) in enumerate(flows.items()):
    srv = dport if dport in (5269, 7400) else sport
    direction = 'in' if dport in (5269, 7400) else 'out'
    kind = 's2s' if srv == 5269 else 'component'
    name = f"{i:02d}.{kind}-{direction}.{'.'.join(map(str, src))}-{sport}-to-{'.'.join(map(str, dst))}-{dport}"
    open(os.path.join(out, name), 'wb').write(bytes(body))
    print(name, len(body))
