"""The small error tree.

    SipcurlError
    ├── ConfigError      a bad setting: names file, line, option and value; stops start-up
    ├── PvError          a malformed pseudo-variable expression or transformation
    └── WireError        a protocol-level failure that becomes a reply's `error`
                         (code is one of WIRE_ERROR_CODES)

HTTP and curl failures are never exceptions: they are `rc`/`curlerror` values.
"""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(://[^:@/]*:)[^@]*@")


def mask_credentials(text: str) -> str:
    """`user:secret@` -> `user:********@`: passwords never reach a log or an error message."""
    return _CREDENTIALS.sub(r"\1********@", text)


WIRE_ERROR_CODES = ("bad_request", "unknown_op", "overloaded", "worker_lost", "shutting_down")


class SipcurlError(Exception):
    pass


class ConfigError(SipcurlError):
    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        option: str | None = None,
        value: object = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.option = option
        self.value = value
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<settings>"
        if self.line is not None:
            where += f":{self.line}"
        what = ""
        if self.option is not None:
            what += f" option {self.option!r}"
        if self.value is not None:
            what += f" value {self.value!r}"
        return f"{where}:{what} {self.message}".replace(": ", ": ", 1)


class PvError(SipcurlError, ValueError):
    pass


class WireError(SipcurlError):
    def __init__(self, code: str, message: str) -> None:
        assert code in WIRE_ERROR_CODES, code
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    def as_reply_field(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
