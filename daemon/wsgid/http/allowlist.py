"""Allow-lists of peer addresses: who may send a PROXY header, whose forwarded headers count.

Owns: reading an allow-list (`proxy_allow_ips`, `forwarded_allow_ips`: IP addresses, CIDR
networks, or `*` for anyone) and answering whether a peer is on it.

Decisions:
- A network with host bits set (`10.0.0.1/8`) is refused, as gunicorn 24.1.1 does: it is
  almost always a typo for an address or for `10.0.0.0/8`, and guessing which is unsafe.
- A UNIX-socket peer (its address is "") is always on the list, as in gunicorn: only local
  processes that may open the socket file can connect, and the proxy in front is the
  usual one.
- An IPv4 address in IPv6 form (`::ffff:10.0.0.1`, what a dual-stack listener reports) is
  judged as the IPv4 address it is.
- The answer is kept per address (a worker meets few distinct peers, and this is asked once
  per connection), in a bounded table (`cache.py`).
- `*` trusts whoever connects, never an address a forwarded header names (`listed`): the
  hops of a header are written by the client as much as by the proxies, so with `*` alone
  no hop is a proxy, and the client is the hop the peer itself added.

`address_text` writes an address as the environ and the logs show it: an IPv4 address in
IPv6 form as `::ffff:10.0.0.1`, as the kernel's dual-stack sockets and gunicorn give it, not
in the hex Python before 3.13 writes (`::ffff:a00:1`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from wsgid.http.cache import remember

ANYONE: Final = "*"
_CACHE_MAX: Final = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_entry(text: str) -> Network:
    """One allow-list entry as a network; ValueError saying what is wrong and what is accepted."""
    entry = text.strip()
    try:
        return ipaddress.ip_network(entry, strict=True)
    except ValueError:
        pass
    if "/" in entry:
        try:
            loose = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            pass
        else:
            raise ValueError(
                f"{text!r} has host bits set; write the network as {loose.with_prefixlen}"
                f" or the address alone as {entry.partition('/')[0]}"
            )
    raise ValueError(f"{text!r} is not an IP address, a CIDR network (10.0.0.0/8) or *")


class AllowList:
    """A set of networks (or anyone) that a peer address is checked against."""

    __slots__ = ("_cache", "anyone", "networks")

    def __init__(self, entries: Iterable[str]) -> None:
        items = [e.strip() for e in entries]
        self.anyone = ANYONE in items
        self.networks: tuple[Network, ...] = tuple(parse_entry(e) for e in items if e != ANYONE)
        self._cache: dict[str, bool] = {}

    def allows(self, address: str) -> bool:
        """Whether a peer whose address is `address` ("" for a UNIX socket) is on the list."""
        found = self._cache.get(address)
        if found is None:
            found = remember(self._cache, address, self._check(address), _CACHE_MAX)
        return found

    def listed(self, address: str) -> bool:
        """Whether `address`, named by a forwarded header, is on one of the list's networks
        (`*` names no address: see the module docstring). Asked only of requests that carry
        such a header, with `remote_addr_from`: not kept."""
        return bool(address) and self._on_networks(address)

    def _check(self, address: str) -> bool:
        if self.anyone or not address:
            return True
        return self._on_networks(address)

    def _on_networks(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])  # an IPv6 zone is not part of it
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            mapped = ip.ipv4_mapped
            return any(mapped in net for net in self.networks)
        return any(ip in net for net in self.networks)


def address_text(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """`ip` as text, an IPv4-mapped IPv6 address as `::ffff:a.b.c.d` (see the docstring)."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return f"::ffff:{mapped}"
    return str(ip)
