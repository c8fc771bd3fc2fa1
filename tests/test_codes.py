from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wtframe.codes import (
    HTTP3_ERROR_FIRST,
    HTTP3_ERROR_LAST,
    CloseCode,
    StreamErrorCode,
    WTErrorCode,
    from_http3_error,
    to_http3_error,
)

MAX_CODE = 0xFFFFFFFF
in_range = st.integers(min_value=HTTP3_ERROR_FIRST, max_value=HTTP3_ERROR_LAST)


def is_grease(value: int) -> bool:
    return (value - 0x21) % 0x1F == 0


@given(st.integers(min_value=0, max_value=MAX_CODE))
def test_round_trip_over_all_32_bit_codes(code: int) -> None:
    error = to_http3_error(code)
    assert HTTP3_ERROR_FIRST <= error <= HTTP3_ERROR_LAST
    assert not is_grease(error)
    assert from_http3_error(error) == code


@given(in_range.filter(lambda value: not is_grease(value)))
def test_every_non_grease_value_in_the_range_carries_a_code(error: int) -> None:
    code = from_http3_error(error)
    assert code is not None
    assert to_http3_error(code) == error


@given(st.integers(min_value=0, max_value=(HTTP3_ERROR_LAST - 0x21) // 0x1F))
def test_grease_values_inside_the_range_carry_no_code(n: int) -> None:
    error = 0x1F * n + 0x21
    if HTTP3_ERROR_FIRST <= error <= HTTP3_ERROR_LAST:
        assert from_http3_error(error) is None


def test_grease_values_at_the_start_of_the_range() -> None:
    first = HTTP3_ERROR_FIRST + (-(HTTP3_ERROR_FIRST - 0x21)) % 0x1F
    assert is_grease(first) and first - HTTP3_ERROR_FIRST < 0x1F
    # Exactly one value in every 0x1f is GREASE, and codes skip over it.
    assert [from_http3_error(first + offset) for offset in (-1, 0, 1)] == [
        first - 1 - HTTP3_ERROR_FIRST,
        None,
        first - HTTP3_ERROR_FIRST,
    ]
    assert sum(from_http3_error(HTTP3_ERROR_FIRST + i) is None for i in range(0x1F * 10)) == 10


def test_boundaries() -> None:
    assert to_http3_error(0) == HTTP3_ERROR_FIRST == 0x52E4A40FA8DB
    assert to_http3_error(MAX_CODE) == HTTP3_ERROR_LAST == 0x52E5AC983162
    assert to_http3_error(0x1D) == HTTP3_ERROR_FIRST + 0x1D
    assert to_http3_error(0x1E) == HTTP3_ERROR_FIRST + 0x1F
    assert from_http3_error(HTTP3_ERROR_FIRST) == 0
    assert from_http3_error(HTTP3_ERROR_LAST) == MAX_CODE
    assert from_http3_error(HTTP3_ERROR_FIRST - 1) is None
    assert from_http3_error(HTTP3_ERROR_LAST + 1) is None
    assert from_http3_error(0) is None  # H3_NO_ERROR's neighbour space
    assert from_http3_error(0x100) is None  # H3_NO_ERROR
    assert from_http3_error(WTErrorCode.SESSION_GONE) is None


@pytest.mark.parametrize("code", [-1, MAX_CODE + 1, 2**62])
def test_out_of_range_codes_raise(code: int) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        to_http3_error(code)


def test_code_values() -> None:
    assert {code.name: int(code) for code in WTErrorCode} == {
        "SESSION_GONE": 0x170D7B68,
        "BUFFERED_STREAM_REJECTED": 0x3994BD84,
        "FLOW_CONTROL_ERROR": 0x045D4487,
        "REQUIREMENTS_NOT_MET": 0x212C0D48,
    }
    assert (CloseCode.NORMAL, CloseCode.PROTOCOL_ERROR, CloseCode.ABNORMAL) == (0, 1002, 1006)
    for code in [*CloseCode, *StreamErrorCode]:
        assert from_http3_error(to_http3_error(code)) == code
