from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wtframe import datastructures
from wtframe.datastructures import HeaderPair, Headers, QueryParams, parse_query

TEXT = st.text(st.characters(codec="utf-8"))


# --- QueryParams ---------------------------------------------------------------------------


def test_query_params_from_string() -> None:
    params = QueryParams("a=1&b=2&a=3&empty=&flag")
    assert params["a"] == "3"
    assert params["b"] == "2"
    assert params["empty"] == ""
    assert params["flag"] == ""
    assert params.getlist("a") == ["1", "3"]
    assert params.getlist("missing") == []
    assert len(params) == 4
    assert list(params) == ["a", "b", "empty", "flag"]
    assert list(params.keys()) == ["a", "b", "empty", "flag"]
    assert list(params.items()) == [("a", "3"), ("b", "2"), ("empty", ""), ("flag", "")]
    assert params.multi_items() == [
        ("a", "1"),
        ("b", "2"),
        ("a", "3"),
        ("empty", ""),
        ("flag", ""),
    ]


def test_query_params_decoding() -> None:
    params = QueryParams("name=caf%C3%A9&q=a+b&sym=%26%3D")
    assert params["name"] == "café"
    assert params["q"] == "a b"
    assert params["sym"] == "&="


def test_query_params_get_and_contains() -> None:
    params = QueryParams("a=1")
    assert params.get("a") == "1"
    assert params.get("b") is None
    assert params.get("b", "x") == "x"
    assert "a" in params
    assert "b" not in params
    number: object = 1
    assert number not in params
    with pytest.raises(KeyError):
        params["b"]


def test_query_params_other_sources() -> None:
    assert QueryParams() == QueryParams("")
    assert len(QueryParams(None)) == 0
    assert QueryParams({"a": "1", "b": "2"}).multi_items() == [("a", "1"), ("b", "2")]
    pairs = QueryParams([("a", "1"), ("a", "2")])
    assert pairs.getlist("a") == ["1", "2"]
    copy = QueryParams(pairs)
    assert copy.multi_items() == [("a", "1"), ("a", "2")]


def test_query_params_multi_items_is_a_copy() -> None:
    params = QueryParams("a=1")
    params.multi_items().append(("b", "2"))
    assert "b" not in params


def test_query_params_equality() -> None:
    assert QueryParams("a=1&b=2") == QueryParams("b=2&a=1")
    assert QueryParams("a=1&a=2") != QueryParams("a=2")
    assert QueryParams("a=1&a=2") == {"a": "2"}
    assert QueryParams("a=1") != {"a": "2"}
    assert QueryParams("a=1") != "a=1"


def test_query_params_str_and_repr() -> None:
    params = QueryParams([("a", "1"), ("b", "x y&z"), ("a", "é")])
    assert str(params) == "a=1&b=x+y%26z&a=%C3%A9"
    assert repr(params) == "QueryParams('a=1&b=x+y%26z&a=%C3%A9')"
    assert str(QueryParams()) == ""


def test_query_params_is_read_only() -> None:
    params = QueryParams("a=1")
    assert isinstance(params, Mapping)
    with pytest.raises(TypeError):
        params["a"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        params.extra = 1  # type: ignore[attr-defined]


def test_query_params_are_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(QueryParams("a=1"))


@given(st.lists(st.tuples(TEXT, TEXT)))
def test_query_params_string_round_trip(pairs: list[tuple[str, str]]) -> None:
    params = QueryParams(pairs)
    assert QueryParams(str(params)).multi_items() == pairs


# --- parse_query ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        ("/echo", []),
        ("/echo?", []),
        ("/echo?x=1&y=2", [("x", "1"), ("y", "2")]),
        ("/echo?x=1#frag", [("x", "1")]),
        ("/echo#frag?x=1", []),
        ("/echo?x=1?y=2", [("x", "1?y=2")]),
        ("/echo?x=1&x=2", [("x", "1"), ("x", "2")]),
        ("/echo?token=a%2Fb", [("token", "a/b")]),
    ],
)
def test_parse_query(raw_path: str, expected: list[tuple[str, str]]) -> None:
    params = parse_query(raw_path)
    assert isinstance(params, QueryParams)
    assert params.multi_items() == expected


# --- Headers -------------------------------------------------------------------------------


def test_headers_from_bytes() -> None:
    raw: list[HeaderPair] = [
        (b"Origin", b"https://example.com"),
        (b"x-tag", b"one"),
        (b"X-Tag", b"two"),
        (b"x-latin", "café".encode("latin-1")),
    ]
    headers = Headers(raw)
    assert headers["origin"] == "https://example.com"
    assert headers["ORIGIN"] == "https://example.com"
    assert headers["X-Tag"] == "one"
    assert headers.getlist("x-TAG") == ["one", "two"]
    assert headers["x-latin"] == "café"
    assert headers.raw == raw
    assert len(headers) == 3
    assert list(headers) == ["origin", "x-tag", "x-latin"]
    assert list(headers.items()) == [
        ("origin", "https://example.com"),
        ("x-tag", "one"),
        ("x-latin", "café"),
    ]
    assert headers.multi_items() == [
        ("origin", "https://example.com"),
        ("x-tag", "one"),
        ("x-tag", "two"),
        ("x-latin", "café"),
    ]


def test_headers_from_str_pairs_and_mapping() -> None:
    pairs: list[HeaderPair] = [("Content-Type", "text/plain"), ("X-A", "1")]
    headers = Headers(pairs)
    assert headers["content-type"] == "text/plain"
    assert headers.raw == pairs
    assert Headers({"X-A": "1", "Content-Type": "text/plain"}) == headers
    assert Headers({"X-A": "1"}).raw == [("X-A", "1")]
    assert Headers() == Headers([])
    assert len(Headers(None)) == 0


def test_headers_mixed_bytes_and_str_compare_equal() -> None:
    assert Headers([(b"X-A", b"1")]) == Headers([("x-a", "1")])


def test_headers_lookup_misses() -> None:
    headers = Headers([(b"x-a", b"1")])
    assert "X-A" in headers
    assert "x-b" not in headers
    number: object = 5
    assert number not in headers
    assert headers.get("x-b") is None
    assert headers.get("X-B", "d") == "d"
    assert headers.get(5) is None  # type: ignore[call-overload]
    assert headers.getlist("x-b") == []
    with pytest.raises(KeyError):
        headers["x-b"]


def test_headers_equality() -> None:
    one = Headers([(b"a", b"1"), (b"b", b"2")])
    assert one == Headers([(b"B", b"2"), (b"A", b"1")])
    assert one != Headers([(b"a", b"1"), (b"b", b"3")])
    assert one != Headers([(b"a", b"1"), (b"a", b"1"), (b"b", b"2")])
    assert one == {"a": "1", "b": "2"}
    assert one != {"a": "1"}
    assert one != [(b"a", b"1"), (b"b", b"2")]
    assert Headers([(b"a", b"X")]) != Headers([(b"a", b"x")])


def test_headers_raw_and_multi_items_are_copies() -> None:
    source: list[HeaderPair] = [(b"a", b"1")]
    headers = Headers(source)
    source.append((b"b", b"2"))
    headers.raw.append((b"c", b"3"))
    headers.multi_items().append(("d", "4"))
    assert headers.raw == [(b"a", b"1")]
    assert headers.multi_items() == [("a", "1")]


def test_headers_repr() -> None:
    assert repr(Headers([(b"X-A", b"1")])) == "Headers([('x-a', '1')])"


def test_headers_are_read_only() -> None:
    headers = Headers([(b"a", b"1")])
    with pytest.raises(TypeError):
        headers["a"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        headers.extra = 1  # type: ignore[attr-defined]


@given(
    st.lists(st.tuples(st.text("abcXYZ-", min_size=1), st.text(st.characters(max_codepoint=255))))
)
def test_headers_case_insensitive_property(pairs: list[tuple[str, str]]) -> None:
    headers = Headers([(n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs])
    swapped = Headers([(n.swapcase(), v) for n, v in pairs])
    assert headers == swapped
    for name, _ in pairs:
        values = [v for n, v in pairs if n.lower() == name.lower()]
        for variant in (name, name.upper(), name.lower(), name.swapcase()):
            assert variant in headers
            assert headers[variant] == values[0]
            assert headers.getlist(variant) == values


def test_module_exports() -> None:
    for name in datastructures.__all__:
        assert hasattr(datastructures, name)
