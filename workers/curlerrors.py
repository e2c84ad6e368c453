"""`$curlerror(N)`: the text Kamailio's pseudo-variable gives for a return code.

For 0..99 that is libcurl's own `curl_easy_strerror()`, read from the libcurl that pycurl
loaded (so the wording matches the library doing the transfers); N > 99 is an HTTP status,
N < 0 Kamailio's "Bad CURL error code".
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import cache

import pycurl


@cache
def _strerror() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    here = os.path.dirname(os.path.dirname(pycurl.__file__))
    candidates = glob.glob(os.path.join(here, "pycurl.libs", "libcurl*.so*")) + [
        "libcurl.so.4",
        "libcurl-gnutls.so.4",
    ]
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        fn = lib.curl_easy_strerror
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.c_int]
        return fn
    return None


@cache
def curlerror_text(rc: int) -> str:
    if rc < 0:
        return "Bad CURL error code"
    if rc > 99:
        return "HTTP result code"
    fn = _strerror()
    if fn is None:
        return "No error" if rc == 0 else f"curl error {rc}"
    text: bytes = fn(rc)
    return text.decode("ascii", "replace")
