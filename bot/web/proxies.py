"""The client's address behind a reverse proxy (HTTP_TRUSTED_PROXIES).

Behind Caddy or nginx every connection comes from the proxy, so the per-client rate limit and
the logs would lump every player together under 127.0.0.1. When the peer is a proxy the
operator trusts, the client is the right-most X-Forwarded-For entry that is not itself a trusted
proxy: each proxy appends the address it saw, so entries to the left of that one were written by
the client and may be forged. From any other peer the header is ignored.

aiohttp-remotes does this for a fixed chain of hops (XForwardedStrict takes one set per hop);
a list of addresses/CIDRs valid at any hop is simpler to configure, so it is done here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return any(ip in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: Iterable[str]) -> str | None:
        """The client's address: `peer` unless it is trusted and forwarded a usable one."""
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for value in forwarded_for for h in value.split(",")]
        for hop in reversed(hops):
            if not hop:
                continue
            try:
                address = str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a proxy always writes an address: this is not one of ours
            if not self.trusts(address):
                return address
        return peer  # every hop was a proxy of ours (a health check from the proxy host)


def client_address_middleware(proxies: TrustedProxies) -> Middleware:
    """Middleware setting `request.remote` to the client's address (logs and limits read it)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = proxies.client(request.remote, request.headers.getall("X-Forwarded-For", ()))
        if client is not None and client != request.remote:
            request = request.clone(remote=client)
        return await handler(request)

    return middleware
