"""Real servers on 127.0.0.1 for the tests, so they assert what a backend really sees.

`HttpTestServer` (plain or TLS) counts TCP connections (`accepts`, `open_connections`) and
records every request (`requests`: method, path with query, headers in wire order, body,
connection number, TLS client certificate). Routes, a suffix allowed after each
(`/status/500/x`); percent-escapes in arguments are bytes (latin-1):

- `/echo`, `/`: 200 JSON {method, path, headers, body}
- `/status/<code>`: that status, `status <code>\\n` (no body for 204/304); a 1xx is sent
  as an interim response followed by 200 `after informational\\n`
- `/body?size=N&ctype=T&lines=K&nul=1&chunked=1`: N deterministic bytes
  (`0123456789...`, or `ab\\0cd...` with nul=1), or K lines `line1\\n...`
- `/text?content=C&ctype=T&status=S`: body exactly C
- `/redirect/<n>`: 302 to `/redirect/<n-1>`; `/redirect/0` is 302 to `/echo`
  (n+1 hops, the last Location is /echo); `/redirect-to?url=U&code=30x`; `/loop`
- `/slow?ms=N`; `/trickle?bytes=N&ms=M`: one byte every M ms
- `/stall`: never answers (until stop); `/close`: closes unanswered; `/reset`: RST;
  `/cut?bytes=N`: Content-Length N+1000, N bytes, close; `/endless`: chunked forever
- `/headers?set=Name:Value&set=...`: those response headers, repeats kept
- `/auth/basic/<user>/<pass>`, `/auth/digest/<user>/<pass>` (MD5, qop=auth): 401 with the
  challenge, or 200 /echo JSON plus "user"
- `/close-after`: /echo with `Connection: close`, then closes
- `Connection: close` (and HTTP/1.0 without keep-alive) is honoured; `Expect:
  100-continue` is answered; a malformed request gets 400 and a close.

`ProxyServer` forwards absolute-URI http:// requests (keep-alive with the client, a fresh
upstream connection each), recording them in `seen` and `requests`, counted by `count`.
`TlsMaterial` makes the CA, client certificate and server contexts of the TLS fixtures.
"""

from tests.servers.listener import live_listeners
from tests.servers.ports import env_free_port, free_port, refused_url
from tests.servers.proxy import ProxyServer
from tests.servers.server import HttpTestServer
from tests.servers.tls import TlsMaterial
from tests.servers.wire import Recorded

__all__ = [
    "HttpTestServer",
    "ProxyServer",
    "Recorded",
    "TlsMaterial",
    "env_free_port",
    "free_port",
    "live_listeners",
    "refused_url",
]
