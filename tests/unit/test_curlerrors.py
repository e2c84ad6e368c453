"""`$curlerror(N)` texts, as a script would print them."""

from __future__ import annotations

import pycurl
import pytest

from workers import curlerrors
from workers.curlerrors import FALLBACK_TEXTS, curlerror_text, fallback_text


@pytest.mark.parametrize(
    ("rc", "text"),
    [
        (-1, "Bad CURL error code"),
        (-4, "Bad CURL error code"),
        (100, "HTTP result code"),
        (503, "HTTP result code"),
        (1000, "HTTP result code"),
        (0, "No error"),
        (1, "Unsupported protocol"),
        (28, "Timeout was reached"),
        (60, "SSL peer certificate or SSH remote key was not OK"),
        (34, "Internal problem setting up the POST"),  # libcurl 7.88's: Kamailio 5.6's text
        (41, "A required function in the library was not found"),
    ],
)
def test_kamailios_ranges_and_libcurls_wording(rc: int, text: str) -> None:
    assert curlerror_text(rc) == text


def test_the_fallback_table_says_what_the_loaded_libcurl_says() -> None:
    """The table stands in when libcurl cannot be reached by ctypes: it must not drift."""
    if not pycurl.version_info()[1].startswith("8."):
        pytest.skip("the table holds libcurl 8's wording")
    for rc in set(range(100)) - set(curlerrors.LIBCURL7_TEXTS):
        assert curlerror_text(rc) == fallback_text(rc), rc
    assert fallback_text(20) == "Unknown error" and 20 not in FALLBACK_TEXTS


def test_without_the_library_the_table_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(curlerrors, "_strerror", lambda: None)
    curlerrors.curlerror_text.cache_clear()
    try:
        assert curlerrors.curlerror_text(7) == "Could not connect to server"
        assert curlerrors.curlerror_text(-1) == "Bad CURL error code"
    finally:
        curlerrors.curlerror_text.cache_clear()
