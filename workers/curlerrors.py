"""`$curlerror(N)`: the text Kamailio's pseudo-variable gives for a return code.

For 0..99 that is libcurl's own `curl_easy_strerror()`, read from the libcurl that pycurl
loaded (so the wording matches the library doing the transfers); when that library cannot
be reached, a table of libcurl 8's wording stands in. Two codes libcurl 8 retired (no
transfer returns them any more) keep the text Kamailio's libcurl 7 gives, so a script
printing `$curlerror(34)` reads what it reads under Kamailio. N > 99 is an HTTP status,
N < 0 Kamailio's "Bad CURL error code".
"""

from __future__ import annotations

import ctypes
import glob
import os
from functools import cache

import pycurl

# libcurl 8's curl_easy_strerror() texts; codes it does not name give "Unknown error".
FALLBACK_TEXTS: dict[int, str] = {
    0: "No error",
    1: "Unsupported protocol",
    2: "Failed initialization",
    3: "URL using bad/illegal format or missing URL",
    4: "A requested feature, protocol or option was not found built-in in this libcurl due to a build-time decision.",
    5: "Could not resolve proxy name",
    6: "Could not resolve hostname",
    7: "Could not connect to server",
    8: "Weird server reply",
    9: "Access denied to remote resource",
    10: "FTP: The server failed to connect to data port",
    11: "FTP: unknown PASS reply",
    12: "FTP: Accepting server connect has timed out",
    13: "FTP: unknown PASV reply",
    14: "FTP: unknown 227 response format",
    15: "FTP: cannot figure out the host in the PASV response",
    16: "Error in the HTTP2 framing layer",
    17: "FTP: could not set file type",
    18: "Transferred a partial file",
    19: "FTP: could not retrieve (RETR failed) the specified file",
    21: "Quote command returned error",
    22: "HTTP response code said error",
    23: "Failed writing received data to disk/application",
    25: "Upload failed (at start/before it took off)",
    26: "Failed to open/read local data from file/application",
    27: "Out of memory",
    28: "Timeout was reached",
    30: "FTP: command PORT failed",
    31: "FTP: command REST failed",
    33: "Requested range was not delivered by the server",
    35: "SSL connect error",
    36: "Could not resume download",
    37: "Could not read a file:// file",
    38: "LDAP: cannot bind",
    39: "LDAP: search failed",
    42: "Operation was aborted by an application callback",
    43: "A libcurl function was given a bad argument",
    45: "Failed binding local connection end",
    47: "Number of redirects hit maximum amount",
    48: "An unknown option was passed in to libcurl",
    49: "Malformed option provided in a setopt",
    52: "Server returned nothing (no headers, no data)",
    53: "SSL crypto engine not found",
    54: "Can not set SSL crypto engine as default",
    55: "Failed sending data to the peer",
    56: "Failure when receiving data from the peer",
    58: "Problem with the local SSL certificate",
    59: "Could not use specified SSL cipher",
    60: "SSL peer certificate or SSH remote key was not OK",
    61: "Unrecognized or bad HTTP Content or Transfer-Encoding",
    63: "Maximum file size exceeded",
    64: "Requested SSL level failed",
    65: "Send failed since rewinding of the data stream failed",
    66: "Failed to initialize SSL crypto engine",
    67: "Login denied",
    68: "TFTP: File Not Found",
    69: "TFTP: Access Violation",
    70: "Disk full or allocation exceeded",
    71: "TFTP: Illegal operation",
    72: "TFTP: Unknown transfer ID",
    73: "Remote file already exists",
    74: "TFTP: No such user",
    77: "Problem with the SSL CA cert (path? access rights?)",
    78: "Remote file not found",
    79: "Error in the SSH layer",
    80: "Failed to shut down the SSL connection",
    81: "Socket not ready for send/recv",
    82: "Failed to load CRL file (path? access rights?, format?)",
    83: "Issuer check against peer certificate failed",
    84: "FTP: The server did not accept the PRET command.",
    85: "RTSP CSeq mismatch or invalid CSeq",
    86: "RTSP session error",
    87: "Unable to parse FTP file list",
    88: "Chunk callback failed",
    89: "The max connection limit is reached",
    90: "SSL public key does not match pinned public key",
    91: "SSL server certificate status verification FAILED",
    92: "Stream error in the HTTP/2 framing layer",
    93: "API function called from within callback",
    94: "An authentication function returned an error",
    95: "HTTP/3 error",
    96: "QUIC connection error",
    97: "proxy handshake error",
    98: "SSL Client Certificate required",
    99: "Unrecoverable error in select/poll",
    100: "A value or data field grew larger than allowed",
}


# Named by libcurl 7.88 (Debian 12's, Kamailio 5.6's), "Unknown error" in libcurl 8.
LIBCURL7_TEXTS: dict[int, str] = {
    34: "Internal problem setting up the POST",
    41: "A required function in the library was not found",
}


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
            fn = lib.curl_easy_strerror
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.c_int]
        return fn
    return None


def fallback_text(rc: int) -> str:
    return FALLBACK_TEXTS.get(rc, "Unknown error")


@cache
def curlerror_text(rc: int) -> str:
    if rc < 0:
        return "Bad CURL error code"
    if rc > 99:
        return "HTTP result code"
    if rc in LIBCURL7_TEXTS:
        return LIBCURL7_TEXTS[rc]
    fn = _strerror()
    if fn is None:
        return fallback_text(rc)
    text: bytes | None = fn(rc)
    return text.decode("ascii", "replace") if text else fallback_text(rc)
