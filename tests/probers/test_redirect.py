"""The request a redirect asks for: methods, bodies and credentials across origins."""

from __future__ import annotations

import httpx
import pytest

from probe.probers._redirect import next_request


def _request(method: str = "GET", url: str = "http://a.test/x", **kwargs: object) -> httpx.Request:
    return httpx.Client(headers={"User-Agent": "t"}).build_request(method, url, **kwargs)  # type: ignore[arg-type]


def _answer(status: int, location: str | None = None) -> httpx.Response:
    headers = {} if location is None else {"Location": location}
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize("status", [200, 204, 300, 304, 404])
def test_not_a_redirect(status):
    assert next_request(_request(), _answer(status, "/elsewhere")) is None


def test_a_redirect_without_location_is_an_answer():
    assert next_request(_request(), _answer(302)) is None


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("POST", 301, "GET"),
        ("POST", 302, "GET"),
        ("POST", 303, "GET"),
        ("PUT", 303, "GET"),
        ("HEAD", 303, "HEAD"),
        ("PUT", 302, "PUT"),
        ("POST", 307, "POST"),
        ("POST", 308, "POST"),
    ],
)
def test_method_after_redirect(method, status, expected):
    request = _request(method, content=b"payload", headers={"Content-Type": "text/plain"})
    following = next_request(request, _answer(status, "/next"))
    assert following is not None
    assert following.method == expected
    if expected == "GET":
        assert following.content == b""
        assert "content-length" not in following.headers
        assert "content-type" not in following.headers
    else:  # the request as it was
        assert following.content == b"payload"


def test_relative_locations_resolve_against_the_request():
    request = _request(url="http://a.test:8080/dir/page?q=1")
    assert str(next_request(request, _answer(302, "other")).url) == "http://a.test:8080/dir/other"  # type: ignore[union-attr]
    assert str(next_request(request, _answer(302, "/top")).url) == "http://a.test:8080/top"  # type: ignore[union-attr]
    assert (
        str(next_request(request, _answer(302, "//b.test/z")).url)  # type: ignore[union-attr]
        == "http://b.test/z"
    )


def test_same_origin_keeps_credentials_and_the_users_host():
    request = _request(headers={"Authorization": "Basic eDp5", "Host": "virtual.test"})
    following = next_request(request, _answer(302, "/next"))
    assert following is not None
    assert following.headers["authorization"] == "Basic eDp5"
    assert following.headers["host"] == "virtual.test"


@pytest.mark.parametrize("location", ["http://b.test/x", "https://a.test/x", "http://a.test:81/x"])
def test_another_origin_gets_no_credentials_and_its_own_host(location):
    request = _request(headers={"Authorization": "Basic eDp5", "Host": "virtual.test"})
    following = next_request(request, _answer(301, location))
    assert following is not None
    assert "authorization" not in following.headers
    assert following.headers["host"] == httpx.URL(location).netloc.decode()
    assert following.headers.raw[0][0].lower() == b"host"


def test_the_default_port_written_out_is_the_same_origin():
    request = _request(url="https://a.test/x", headers={"Authorization": "Basic eDp5"})
    following = next_request(request, _answer(302, "https://a.test:443/y"))
    assert following is not None
    assert following.headers["authorization"] == "Basic eDp5"


def test_a_location_that_is_not_http_is_refused():
    with pytest.raises(httpx.UnsupportedProtocol):
        next_request(_request(), _answer(302, "ftp://a.test/file"))


def test_a_location_that_is_not_a_url_is_a_protocol_error():
    with pytest.raises(httpx.RemoteProtocolError, match="location header"):
        next_request(_request(), _answer(302, "http://[::1"))


def test_the_extensions_travel_with_the_request():
    request = _request(extensions={"trace": print})
    following = next_request(request, _answer(302, "/next"))
    assert following is not None
    assert following.extensions["trace"] is print
