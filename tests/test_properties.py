"""Property tests: the cursor encoding and the input validators hold for any input."""

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest

from dataservice.api import cursors
from dataservice.api.parsing import decode_json
from dataservice.errors import InvalidCursor
from dataservice.schemas.users import UserCreate, UserPatch

positions = st.lists(
    st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=40)),
    min_size=1,
    max_size=3,
)
fingerprints = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)


@given(positions, fingerprints)
def test_cursor_round_trip(position, fp):
    assert cursors.decode(cursors.encode(position, fp), fp) == position


@given(positions, fingerprints, st.data())
def test_any_change_to_a_cursor_is_refused(position, fp, data):
    token = cursors.encode(position, fp)
    index = data.draw(st.integers(min_value=0, max_value=len(token)))
    edit = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    char = data.draw(st.characters(codec="ascii"))
    if edit == "replace" and index < len(token):
        tampered = token[:index] + char + token[index + 1 :]
    elif edit == "delete" and index < len(token):
        tampered = token[:index] + token[index + 1 :]
    else:
        tampered = token[:index] + char + token[index:]
    if tampered == token:
        return
    with pytest.raises(InvalidCursor):
        cursors.decode(tampered, fp)


@given(st.text(max_size=200), fingerprints)
def test_arbitrary_text_is_never_a_crash(text, fp):
    with contextlib.suppress(InvalidCursor):
        cursors.decode(text, fp)


@given(positions, fingerprints, fingerprints)
def test_cursor_of_another_query_is_refused(position, fp, other):
    if fp != other:
        with pytest.raises(InvalidCursor):
            cursors.decode(cursors.encode(position, fp), other)


@given(st.binary(max_size=300))
def test_decode_json_answers_a_value_or_a_bad_request(raw):
    try:
        value = decode_json(raw)
    except BadRequest:
        return
    json.dumps(value).encode("utf-8")  # whatever passes is plain JSON that UTF-8 can carry


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
user_like = st.fixed_dictionaries(
    {},
    optional={
        "email": st.one_of(st.emails(), st.text(max_size=300), json_values),
        "username": st.one_of(
            st.from_regex(r"[A-Za-z0-9._-]{1,110}", fullmatch=True),
            st.text(max_size=120),
            json_values,
        ),
        "password": st.one_of(st.text(max_size=1100), json_values),
        "hashed_password": st.one_of(st.text(max_size=80), json_values),
    },
)


def satisfies_the_table_constraints(user: dict) -> bool:
    import re

    return (
        len(user["email"]) <= 255
        and "@" in user["email"][1:-1]
        and re.fullmatch(r"[A-Za-z0-9._-]{3,100}", user["username"]) is not None
        and "\x00" not in user["email"]
    )


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(user_like)
def test_create_schema_accepts_only_what_the_table_accepts(body):
    try:
        user = UserCreate().load(body)
    except ValidationError:
        return
    assert satisfies_the_table_constraints(user)
    assert ("password" in user) != ("hashed_password" in user)
    if "password" in user:
        assert 8 <= len(user["password"]) <= 1024 and "\x00" not in user["password"]


@given(st.dictionaries(st.sampled_from(["email", "username", "other"]), json_values))
def test_patch_schema_never_lets_a_bad_value_through(body):
    try:
        patch = UserPatch().load(body)
    except ValidationError:
        return
    assert patch and set(patch) <= {"email", "username"}
    assert all(isinstance(v, str) and "\x00" not in v for v in patch.values())


# Request header lines as the gevent worker reads them (serving/gevent_worker.py): each ends in
# "\n" or "\r\n"; the bytes are those that change how a line is read (colon, blanks, CR, the
# "From " envelope line, a byte outside ASCII, NUL).
header_lines = st.lists(
    st.builds(
        lambda body, end: body + end,
        st.lists(
            st.sampled_from([b"Host", b"X-A", b":", b" ", b"\t", b"\r", b"From ", b"v", b"\xe9"]),
            max_size=6,
        ).map(b"".join),
        st.sampled_from([b"\n", b"\r\n", b"\r\r\n"]),
    ),
    max_size=5,
)


@given(header_lines)
def test_header_lines_are_parsed_as_http_client_parses_them(lines):
    import email.parser

    from gevent import pywsgi

    from dataservice.serving.gevent_worker import parse_header_lines

    ours = parse_header_lines(lines)
    text = b"".join(lines).decode("latin-1")
    theirs = email.parser.Parser(_class=pywsgi.OldMessage).parsestr(text)
    assert ours.items() == theirs.items()
    assert list(ours.headers) == list(theirs.headers)  # what pywsgi builds the environ from


def test_plain_header_lines_do_not_go_through_the_email_parser(monkeypatch):
    import email.parser

    from dataservice.serving.gevent_worker import parse_header_lines

    def refuse(*args, **kwargs):
        raise AssertionError("the email parser was used for plain lines")

    monkeypatch.setattr(email.parser, "Parser", refuse)
    lines = [b"Host: x\r\n", b"Authorization:  Bearer t \r\n", b"X-Empty:\n", b"Dup: 1\r\n"]
    message = parse_header_lines([*lines, b"Dup: 2\r\n"])
    assert message.items() == [
        ("Host", "x"),
        ("Authorization", "Bearer t "),
        ("X-Empty", ""),
        ("Dup", "1"),
        ("Dup", "2"),
    ]
    with pytest.raises(AssertionError):  # a folded line is the parser's to read
        parse_header_lines([b"Host: x\r\n", b" folded\r\n"])
