from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wtframe import routing
from wtframe.exceptions import ConfigurationError
from wtframe.routing import (
    CONVERTORS,
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    Match,
    PathConvertor,
    Router,
    SessionRoute,
    StringConvertor,
    UUIDConvertor,
    compile_path,
    register_convertor,
)


class Echo:
    pass


class Chat:
    pass


class EvenConvertor(Convertor[int]):
    """Accepts even numbers only, declining odd ones with ValueError."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        number = int(value)
        if number % 2:
            raise ValueError("odd")
        return number

    def to_string(self, value: int) -> str:
        return str(value)


class BrokenRegexConvertor(Convertor[str]):
    regex = "("

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


@pytest.fixture
def restore_convertors() -> Iterator[None]:
    saved = dict(CONVERTORS)
    yield
    CONVERTORS.clear()
    CONVERTORS.update(saved)


# Text that can be UTF-8 encoded into a URL (no lone surrogates).
TEXT = st.text(st.characters(codec="utf-8"), min_size=1)


# --- convertors ---------------------------------------------------------------------------


def test_registry_holds_builtin_convertors() -> None:
    assert isinstance(CONVERTORS["str"], StringConvertor)
    assert isinstance(CONVERTORS["path"], PathConvertor)
    assert isinstance(CONVERTORS["int"], IntegerConvertor)
    assert isinstance(CONVERTORS["float"], FloatConvertor)
    assert isinstance(CONVERTORS["uuid"], UUIDConvertor)
    assert repr(CONVERTORS["int"]) == "IntegerConvertor()"


def test_convertor_is_abstract() -> None:
    with pytest.raises(TypeError):
        Convertor()  # type: ignore[abstract]


def test_str_convertor() -> None:
    route = SessionRoute("/rooms/{room}", Echo)
    assert route.match("/rooms/lobby") == {"room": "lobby"}
    assert route.match("/rooms/") is None
    assert route.match("/rooms/a/b") is None
    assert route.url_path_for(room="lobby") == "/rooms/lobby"
    assert route.url_path_for(room=7) == "/rooms/7"
    with pytest.raises(ConfigurationError, match="a str parameter cannot be empty"):
        route.url_path_for(room="")


def test_int_convertor() -> None:
    route = SessionRoute("/rooms/{room:int}", Echo)
    assert route.match("/rooms/42") == {"room": 42}
    assert route.match("/rooms/007") == {"room": 7}
    assert route.match("/rooms/-1") is None
    assert route.match("/rooms/+1") is None
    assert route.match("/rooms/1.5") is None
    assert route.match("/rooms/x") is None
    assert route.url_path_for(room=0) == "/rooms/0"
    for bad in (-1, True, "3", 2.0):
        with pytest.raises(ConfigurationError, match="expected a non-negative int"):
            route.url_path_for(room=bad)


def test_int_convertor_declines_numbers_python_will_not_parse() -> None:
    route = SessionRoute("/rooms/{room:int}", Echo)
    assert route.match("/rooms/" + "9" * 5000) is None


def test_float_convertor() -> None:
    route = SessionRoute("/t/{x:float}", Echo)
    assert route.match("/t/2.5") == {"x": 2.5}
    assert route.match("/t/3") == {"x": 3.0}
    assert route.match("/t/-2.5") is None
    assert route.match("/t/1e5") is None
    assert route.match("/t/.5") is None
    assert route.match("/t/5.") is None
    assert route.match("/t/" + "9" * 400) is None  # beyond float range
    assert route.url_path_for(x=2.5) == "/t/2.5"
    assert route.url_path_for(x=3) == "/t/3.0"
    assert route.url_path_for(x=1e20) == "/t/100000000000000000000"
    assert route.url_path_for(x=1e-7) == "/t/0.0000001"
    assert route.url_path_for(x=-0.0) == "/t/0.0"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1.5, "non-negative finite"),
        (float("inf"), "non-negative finite"),
        (float("nan"), "non-negative finite"),
        (False, "non-negative finite"),
        ("1.5", "non-negative finite"),
        (10**400, "too large for a float"),
    ],
)
def test_float_convertor_rejects(value: object, message: str) -> None:
    route = SessionRoute("/t/{x:float}", Echo)
    with pytest.raises(ConfigurationError, match=message):
        route.url_path_for(x=value)


def test_uuid_convertor() -> None:
    value = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
    route = SessionRoute("/u/{id:uuid}", Echo)
    assert route.match("/u/0f8fad5b-d9cb-469f-a165-70867728950e") == {"id": value}
    assert route.match("/u/0F8FAD5B-D9CB-469F-A165-70867728950E") == {"id": value}
    assert route.match("/u/0f8fad5bd9cb469fa16570867728950e") is None
    assert route.match("/u/{0f8fad5b-d9cb-469f-a165-70867728950e}") is None
    assert route.match("/u/0f8fad5b-d9cb-469f-a165-70867728950g") is None
    assert route.url_path_for(id=value) == "/u/0f8fad5b-d9cb-469f-a165-70867728950e"
    assert route.url_path_for(id="0F8FAD5BD9CB469FA16570867728950E") == (
        "/u/0f8fad5b-d9cb-469f-a165-70867728950e"
    )
    with pytest.raises(ConfigurationError, match="badly formed"):
        route.url_path_for(id="nope")
    with pytest.raises(ConfigurationError, match="expected a UUID"):
        route.url_path_for(id=5)


def test_path_convertor() -> None:
    route = SessionRoute("/files/{rest:path}", Echo)
    assert route.match("/files/a/b/c.txt") == {"rest": "a/b/c.txt"}
    assert route.match("/files/") == {"rest": ""}
    assert route.match("/files") is None
    assert route.url_path_for(rest="a/b c") == "/files/a/b%20c"
    assert route.url_path_for(rest="") == "/files/"


def test_path_convertor_before_trailing_literal() -> None:
    route = SessionRoute("/files/{rest:path}/meta", Echo)
    assert route.match("/files/a/b/meta") == {"rest": "a/b"}
    assert route.match("/files/a/b") is None


def test_convertor_value_error_declines_the_route(restore_convertors: None) -> None:
    register_convertor("even", EvenConvertor())
    router = Router()
    router.add_session("/n/{n:even}", Echo)
    router.add_session("/n/{n:int}", Chat)
    even = router.match("/n/4")
    odd = router.match("/n/3")
    assert even is not None and even.route.endpoint is Echo
    assert odd is not None and odd.route.endpoint is Chat


def test_register_convertor(restore_convertors: None) -> None:
    register_convertor("even", EvenConvertor())
    assert isinstance(CONVERTORS["even"], EvenConvertor)
    route = SessionRoute("/n/{n:even}", Echo)
    assert route.match("/n/8") == {"n": 8}
    assert route.url_path_for(n=8) == "/n/8"


def test_register_convertor_replaces_for_later_templates(restore_convertors: None) -> None:
    before = SessionRoute("/n/{n:int}", Echo)
    register_convertor("int", EvenConvertor())
    after = SessionRoute("/n/{n:int}", Echo)
    assert before.match("/n/3") == {"n": 3}
    assert after.match("/n/3") is None


def test_register_convertor_rejects_bad_name() -> None:
    with pytest.raises(ConfigurationError, match=r"convertor name 'my-conv' is not a valid"):
        register_convertor("my-conv", EvenConvertor())
    assert "my-conv" not in CONVERTORS


def test_register_convertor_rejects_non_convertor() -> None:
    with pytest.raises(ConfigurationError, match="is not a Convertor instance"):
        register_convertor("even", EvenConvertor)  # type: ignore[arg-type]
    assert "even" not in CONVERTORS


# --- compile_path --------------------------------------------------------------------------


def test_compile_path_result() -> None:
    regex, path_format, convertors = compile_path("/rooms/{room:int}/{user}/{rest:path}")
    assert path_format == "/rooms/{room}/{user}/{rest}"
    assert list(convertors) == ["room", "user", "rest"]
    assert convertors["room"] is CONVERTORS["int"]
    assert convertors["user"] is CONVERTORS["str"]
    assert convertors["rest"] is CONVERTORS["path"]
    found = regex.match("/rooms/1/ann/x/y")
    assert found is not None
    assert found.groupdict() == {"room": "1", "user": "ann", "rest": "x/y"}


def test_compile_path_anchors_at_the_very_end() -> None:
    regex, _, _ = compile_path("/echo")
    assert regex.match("/echo")
    assert regex.match("/echo\n") is None
    assert regex.match("/echo/") is None
    assert regex.match("/echoes") is None


def test_compile_path_escapes_regex_metacharacters() -> None:
    regex, path_format, _ = compile_path("/a.b+(c)")
    assert regex.match("/a.b+(c)")
    assert regex.match("/aXb+(c)") is None
    assert path_format == "/a.b+(c)"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("rooms/{room}", "route path 'rooms/{room}' must start with '/'"),
        ("", "route path '' must start with '/'"),
        ("/rooms/{room", "unbalanced '{' or '}' in route path '/rooms/{room'"),
        ("/rooms/room}", "unbalanced '{' or '}' in route path '/rooms/room}'"),
        ("/a/{{b}}", "unbalanced '{' or '}' in route path '/a/{{b}}'"),
        ("/echo?x={x}", "route path '/echo?x={x}' contains '?' or '#'"),
        ("/echo#top", "route path '/echo#top' contains '?' or '#'"),
        ("/{}", "parameter name '' in route path '/{}' is not a valid identifier"),
        ("/{1st}", "parameter name '1st' in route path '/{1st}' is not a valid identifier"),
        ("/{a-b}", "parameter name 'a-b' in route path '/{a-b}' is not a valid identifier"),
        ("/{ a }", "parameter name ' a ' in route path '/{ a }' is not a valid identifier"),
        ("/{a}/{a:int}", "parameter 'a' appears twice in route path '/{a}/{a:int}'"),
        (
            "/{a:integer}",
            "unknown convertor 'integer' for parameter 'a' in route path '/{a:integer}' "
            "(known: float, int, path, str, uuid)",
        ),
        ("/{a:}", "unknown convertor '' for parameter 'a'"),
        (
            "/{rest:path}/{name}",
            "parameter 'rest' uses the 'path' convertor, which is only allowed on the last "
            "parameter of route path '/{rest:path}/{name}'",
        ),
    ],
)
def test_compile_path_rejects(path: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        compile_path(path)


def test_compile_path_rejects_bad_convertor_regex(restore_convertors: None) -> None:
    register_convertor("broken", BrokenRegexConvertor())
    with pytest.raises(ConfigurationError, match=r"route path '/\{x:broken\}' compiles to a bad"):
        compile_path("/{x:broken}")


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        SessionRoute("nope", Echo)


# --- SessionRoute --------------------------------------------------------------------------


def test_session_route_attributes() -> None:
    route = SessionRoute("/rooms/{room:int}", Echo)
    assert route.path == "/rooms/{room:int}"
    assert route.endpoint is Echo
    assert route.name == "Echo"
    assert route.path_format == "/rooms/{room}"
    assert route.param_convertors == {"room": CONVERTORS["int"]}
    assert repr(route) == "SessionRoute(path='/rooms/{room:int}', name='Echo')"
    assert SessionRoute("/x", Echo, name="custom").name == "custom"


def test_session_route_without_parameters() -> None:
    route = SessionRoute("/echo", Echo)
    assert route.match("/echo") == {}
    assert route.match("/Echo") is None
    assert route.url_path_for() == "/echo"


def test_trailing_slash_is_significant() -> None:
    assert SessionRoute("/echo", Echo).match("/echo/") is None
    assert SessionRoute("/echo/", Echo).match("/echo") is None
    assert SessionRoute("/echo/", Echo).match("/echo/") == {}


def test_url_path_for_missing_and_unexpected_parameters() -> None:
    route = SessionRoute("/r/{a}/{b:int}", Echo)
    with pytest.raises(
        ConfigurationError,
        match=re.escape("route 'Echo' (/r/{a}/{b:int}) is missing parameter(s): a, b"),
    ):
        route.url_path_for()
    with pytest.raises(
        ConfigurationError,
        match=re.escape("route 'Echo' (/r/{a}/{b:int}) has no parameter(s): c, d"),
    ):
        route.url_path_for(a="x", b=1, c=2, d=3)


def test_url_path_for_wraps_convertor_errors() -> None:
    route = SessionRoute("/r/{b:int}", Echo)
    with pytest.raises(
        ConfigurationError,
        match=re.escape("cannot build parameter 'b' of route 'Echo' (/r/{b:int}): expected"),
    ) as info:
        route.url_path_for(b=-3)
    assert isinstance(info.value.__cause__, ValueError)


def test_url_path_for_accepts_parameters_named_like_its_arguments() -> None:
    route = SessionRoute("/{self}/{name}", Echo, name="odd")
    assert route.url_path_for(self="a", name="b") == "/a/b"
    router = Router([route])
    assert router.url_path_for("odd", self="a", name="b") == "/a/b"


def test_url_path_for_quotes_literals_and_values() -> None:
    route = SessionRoute("/café/100%/{x}", Echo)
    path = route.url_path_for(x="a/b?c#d%e f")
    assert path == "/caf%C3%A9/100%25/a%2Fb%3Fc%23d%25e%20f"
    assert route.match(path) == {"x": "a/b?c#d%e f"}


def test_url_path_for_keeps_sub_delimiters() -> None:
    route = SessionRoute("/{x}", Echo)
    assert route.url_path_for(x="a:b@c!$&'()*+,;=") == "/a:b@c!$&'()*+,;="


# --- percent-decoding ---------------------------------------------------------------------


def test_percent_decoding_of_parameters() -> None:
    route = SessionRoute("/rooms/{name}", Echo)
    assert route.match("/rooms/caf%C3%A9") == {"name": "café"}
    assert route.match("/rooms/a%20b") == {"name": "a b"}
    assert route.match("/rooms/a+b") == {"name": "a+b"}


def test_encoded_slash_stays_inside_a_segment() -> None:
    route = SessionRoute("/rooms/{name}", Echo)
    assert route.match("/rooms/a%2Fb") == {"name": "a/b"}
    assert route.match("/rooms/a%2fb") == {"name": "a/b"}
    two = SessionRoute("/rooms/{a}/{b}", Echo)
    assert two.match("/rooms/a%2Fb") is None
    assert two.match("/rooms/x%2Fy/z") == {"a": "x/y", "b": "z"}


def test_path_convertor_decodes_whole_value() -> None:
    route = SessionRoute("/files/{rest:path}", Echo)
    assert route.match("/files/a%2Fb/c%20d") == {"rest": "a/b/c d"}


def test_percent_decoding_is_done_once() -> None:
    route = SessionRoute("/rooms/{name}", Echo)
    assert route.match("/rooms/%2541") == {"name": "%41"}
    assert route.match("/rooms/%252F") == {"name": "%2F"}
    assert route.match("/rooms/%%34%31") == {"name": "%41"}


def test_invalid_escapes_are_kept() -> None:
    route = SessionRoute("/rooms/{name}", Echo)
    assert route.match("/rooms/100%") == {"name": "100%"}
    assert route.match("/rooms/%zz") == {"name": "%zz"}
    assert route.match("/rooms/%%2F") == {"name": "%/"}


def test_invalid_utf8_is_replaced() -> None:
    route = SessionRoute("/rooms/{name}", Echo)
    assert route.match("/rooms/%FF") == {"name": "\ufffd"}


def test_encoded_literals_match() -> None:
    assert SessionRoute("/rooms/{n:int}", Echo).match("/r%6Foms/%34%32") == {"n": 42}
    assert SessionRoute("/café", Echo).match("/caf%C3%A9") == {}
    assert SessionRoute("/100%", Echo).match("/100%25") == {}


def test_encoded_slash_is_not_a_literal_slash() -> None:
    assert SessionRoute("/a/b", Echo).match("/a%2Fb") is None


def test_encoded_newline_in_values() -> None:
    assert SessionRoute("/{x}", Echo).match("/a%0Ab") == {"x": "a\nb"}
    assert SessionRoute("/{x:path}", Echo).match("/a%0A/b") == {"x": "a\n/b"}


# --- Router --------------------------------------------------------------------------------


def test_router_match_returns_match() -> None:
    router = Router()
    route = router.add_session("/rooms/{room:int}", Chat)
    found = router.match("/rooms/3")
    assert found == Match(route=route, path_params={"room": 3})
    assert router.match("/rooms/x") is None
    assert router.match("") is None
    assert router.match("/") is None


def test_router_strips_query_and_fragment() -> None:
    router = Router()
    route = router.add_session("/echo", Echo)
    for target in ("/echo?x=1", "/echo?", "/echo#frag", "/echo?x=1#frag", "/echo#a?b"):
        found = router.match(target)
        assert found is not None and found.route is route, target
    assert router.match("/echo%3Fx=1") is None


def test_router_percent_decodes() -> None:
    router = Router()
    router.add_session("/rooms/{name}", Echo)
    found = router.match("/rooms/a%2Fb?x=%2F")
    assert found is not None
    assert found.path_params == {"name": "a/b"}


def test_router_first_match_wins() -> None:
    router = Router()
    first = router.add_session("/rooms/{name}", Echo)
    router.add_session("/rooms/{room:int}", Chat)
    router.add_session("/rooms/special", Chat)
    number = router.match("/rooms/5")
    special = router.match("/rooms/special")
    assert number == Match(first, {"name": "5"})
    assert special == Match(first, {"name": "special"})


def test_router_specific_route_first() -> None:
    router = Router()
    special = router.add_session("/rooms/special", Chat)
    numbered = router.add_session("/rooms/{room:int}", Chat)
    named = router.add_session("/rooms/{name}", Echo)
    assert router.match("/rooms/special") == Match(special, {})
    assert router.match("/rooms/7") == Match(numbered, {"room": 7})
    assert router.match("/rooms/x") == Match(named, {"name": "x"})


def test_router_initial_routes_and_routes_property() -> None:
    a = SessionRoute("/a", Echo)
    b = SessionRoute("/b", Chat)
    source = [a, b]
    router = Router(source)
    source.clear()
    assert router.routes == [a, b]
    router.routes.clear()
    assert router.routes == [a, b]
    c = router.add_session("/c", Echo, name="c")
    assert router.routes == [a, b, c]
    assert c.name == "c"
    assert Router().routes == []


def test_router_add_session_validates() -> None:
    router = Router()
    with pytest.raises(ConfigurationError):
        router.add_session("/{x:nope}", Echo)
    assert router.routes == []


def test_router_cache_is_invalidated_by_add_session() -> None:
    router = Router()
    assert router.match("/late") is None
    assert router.match("/late") is None  # the miss is cached
    route = router.add_session("/late", Echo)
    found = router.match("/late")
    assert found is not None and found.route is route


def test_router_cache_hits_do_not_share_params() -> None:
    router = Router()
    router.add_session("/rooms/{room:int}", Echo)
    first = router.match("/rooms/1")
    assert first is not None
    first.path_params["room"] = 99
    first.path_params["extra"] = True
    second = router.match("/rooms/1?again")
    assert second is not None
    assert second.path_params == {"room": 1}


def test_router_cache_is_bounded_lru() -> None:
    router = Router(cache_size=2)
    router.add_session("/{x}", Echo)
    router.match("/a")
    router.match("/b")
    router.match("/a")  # "/a" is now the most recent
    router.match("/c")  # evicts "/b"
    assert list(router._cache) == ["/a", "/c"]
    found = router.match("/b")
    assert found is not None and found.path_params == {"x": "b"}
    assert list(router._cache) == ["/c", "/b"]


def test_router_cache_keys_ignore_the_query() -> None:
    router = Router()
    router.add_session("/echo", Echo)
    router.match("/echo?token=1")
    router.match("/echo?token=2")
    assert list(router._cache) == ["/echo"]


def test_router_default_cache_size() -> None:
    router = Router()
    router.add_session("/{x:int}", Echo)
    for number in range(1100):
        router.match(f"/{number}")
    assert len(router._cache) == 1024


def test_router_cache_can_be_disabled() -> None:
    router = Router(cache_size=0)
    router.add_session("/{x}", Echo)
    found = router.match("/a")
    assert found is not None and found.path_params == {"x": "a"}
    assert len(router._cache) == 0


def test_router_rejects_negative_cache_size() -> None:
    with pytest.raises(ConfigurationError, match="cache_size must be 0 or more, not -1"):
        Router(cache_size=-1)


def test_router_url_path_for() -> None:
    router = Router()
    router.add_session("/rooms/{room:int}", Chat)
    router.add_session("/echo", Echo)
    assert router.url_path_for("Chat", room=4) == "/rooms/4"
    assert router.url_path_for("Echo") == "/echo"
    with pytest.raises(ConfigurationError, match="no session route named 'Nope'"):
        router.url_path_for("Nope")


def test_router_url_path_for_shared_name_picks_by_parameters() -> None:
    router = Router()
    router.add_session("/rooms/{room:int}", Chat)
    router.add_session("/rooms/{room:int}/{user}", Chat)
    router.add_session("/lobby", Chat)
    assert router.url_path_for("Chat", room=1) == "/rooms/1"
    assert router.url_path_for("Chat", room=1, user="ann") == "/rooms/1/ann"
    assert router.url_path_for("Chat") == "/lobby"
    with pytest.raises(ConfigurationError, match=r"has no parameter\(s\): colour"):
        router.url_path_for("Chat", room=1, colour="red")


# --- property tests ------------------------------------------------------------------------


@given(room=st.integers(min_value=0), user=TEXT, id=st.uuids())
def test_round_trip_int_str_uuid(room: int, user: str, id: uuid.UUID) -> None:
    route = SessionRoute("/rooms/{room:int}/{user}/{id:uuid}", Echo)
    params: dict[str, Any] = {"room": room, "user": user, "id": id}
    assert route.match(route.url_path_for(**params)) == params


@given(name=TEXT, rest=st.text(st.characters(codec="utf-8")))
def test_round_trip_path(name: str, rest: str) -> None:
    route = SessionRoute("/files/{name}/{rest:path}", Echo)
    params = {"name": name, "rest": rest}
    assert route.match(route.url_path_for(**params)) == params


@given(x=st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_round_trip_float(x: float) -> None:
    route = SessionRoute("/t/{x:float}", Echo)
    assert route.match(route.url_path_for(x=x)) == {"x": x}


@given(user=TEXT, room=st.integers(min_value=0))
def test_round_trip_through_router(user: str, room: int) -> None:
    router = Router()
    router.add_session("/echo", Echo)
    route = router.add_session("/rooms/{room:int}/{user}", Chat)
    path = router.url_path_for("Chat", room=room, user=user)
    found = router.match(path + "?q=1")
    assert found == Match(route, {"room": room, "user": user})


@given(raw=st.text(st.sampled_from("ab/%25Ff?#\n é")))
def test_match_never_raises_on_arbitrary_paths(raw: str) -> None:
    router = Router()
    router.add_session("/{a}/{b:int}", Echo)
    router.add_session("/{rest:path}", Chat)
    found = router.match("/" + raw)
    assert found is not None


def test_module_exports() -> None:
    for name in routing.__all__:
        assert hasattr(routing, name)
