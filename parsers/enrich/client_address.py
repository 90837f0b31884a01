"""Who the client really is: IP text to addresses, and X-Forwarded-For behind trusted proxies.

When a load balancer or reverse proxy sits in front of the web server, the
connecting address in the log is the proxy's, and the client is in the
X-Forwarded-For header, which anyone can also forge.  Only the hops added by
proxies we trust can be believed, so the header is walked from the right
(the hop nearest to us) and the first address that is not a trusted proxy is
the client.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from parsers.enrich.memo import ColumnMemo

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(text: str) -> Address | None:
    """An address from log text (``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:443``, ``fe80::1%eth0``), or None."""
    text = text.strip()
    if text.startswith("["):  # bracketed IPv6, possibly with a port after the bracket
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    host = text.split("%", 1)[0]
    try:  # inet_pton parses in C, five to ten times faster than ipaddress.ip_address on text
        if ":" in host:
            address = ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, host))
        else:
            address = ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, host))
    except (OSError, ValueError):
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


#: Address ranges that are never a client on the internet (IANA special-purpose registries): nothing to look up.
NOT_PUBLIC = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/3",  # multicast, reserved and broadcast
    "2001::/23",
    "2001:db8::/32",
    "3fff::/20",
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def _sorted_ranges(version: int) -> tuple[list[int], list[int]]:
    networks = sorted(n for n in map(ipaddress.ip_network, NOT_PUBLIC) if n.version == version)
    return [int(n.network_address) for n in networks], [int(n.broadcast_address) for n in networks]


_RANGES = {4: _sorted_ranges(4), 6: _sorted_ranges(6)}


def is_public(address: Address) -> bool:
    """False for private, loopback, link-local, multicast, reserved and documentation addresses.

    A binary search over ``NOT_PUBLIC`` (about 1 µs), where ``ipaddress``'s ``is_global`` tries
    every special network in turn (about 25 µs): it runs once per distinct client address.
    """
    if address.version == 6 and address not in _GLOBAL_UNICAST_V6:
        return False
    starts, ends = _RANGES[address.version]
    number = int(address)
    index = bisect.bisect_right(starts, number) - 1
    return index < 0 or number > ends[index]


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR texts to networks; a bare address is a /32 (or /128). Raises ValueError naming a bad entry."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network like 10.0.0.0/8 or 2001:db8::/32") from None
    return tuple(networks)


class TrustedProxies:
    """The configured proxy networks, and the client behind them."""

    def __init__(self, cidrs: Iterable[str] = (), cache_size: int = 100_000):
        self.networks = parse_networks(cidrs)
        self._trusted_memo = ColumnMemo(self.is_trusted, [pa.bool_()], cache_size)
        self._client_memo = ColumnMemo(self.client_from, [pa.string()], cache_size)

    def _trusted(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def is_trusted(self, text: str) -> tuple[bool]:
        """``(True,)`` when ``text`` is an address inside a trusted proxy network."""
        address = parse_ip(text)
        return (address is not None and self._trusted(address),)

    def client_from(self, header: str) -> tuple[str | None]:
        """``(client,)``: the first untrusted hop walking ``header`` from the right; None when a hop is no address.

        When every hop is trusted, the leftmost one is the client (a request from inside).
        """
        client = None
        for hop in reversed(header.split(",")):
            if not hop.strip():
                continue
            address = parse_ip(hop)
            if address is None:  # "unknown", a host name or garbage: the chain cannot be followed
                return (None,)
            client = str(address)
            if not self._trusted(address):
                break
        return (client,)

    def resolve(self, source_ip: pa.Array, forwarded_for: pa.Array, proxy_ip: pa.Array) -> tuple[pa.Array, pa.Array]:
        """New ``source_ip`` and ``source_proxy_ip`` columns: the client moves in, the proxy moves aside.

        Rows whose connecting address is not a trusted proxy, or that carry no usable header, keep their values.
        """
        if not self.networks or forwarded_for.null_count == len(forwarded_for):
            return source_ip, proxy_ip
        (trusted,) = self._trusted_memo.map(source_ip)
        usable = pc.and_(pc.fill_null(trusted, False), pc.fill_null(pc.not_equal(forwarded_for, "-"), False))
        if not pc.any(usable).as_py():
            return source_ip, proxy_ip
        header = pc.if_else(usable, forwarded_for, pa.scalar(None, pa.string()))
        (client,) = self._client_memo.map(header)
        moved = pc.is_valid(client)
        return pc.if_else(moved, client, source_ip), pc.if_else(moved, source_ip, proxy_ip)
