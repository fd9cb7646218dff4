"""GTO tag grammar: check_name, format_tag and parse_tag, and conformance with GTO itself."""

from __future__ import annotations

import subprocess

import pytest
from gto.constants import fullname_re, name_re, tag_re
from gto.tag import parse_name as gto_parse_name
from hypothesis import given, settings
from hypothesis import strategies as st

from mlopsctl.errors import ExitCode, UsageError
from mlopsctl.gitops.tags import (
    ASSIGN,
    CREATE,
    DEPRECATE,
    DEREGISTER,
    NAME_RE,
    REGISTER,
    UNASSIGN,
    TagEvent,
    check_name,
    format_tag,
    parse_tag,
    path_part,
)

# --- check_name ----------------------------------------------------------------------------------

# GTO's grammar, as its own tests use it: uppercase, '/', monorepo 'dir:name'.
VALID_NAMES = ["a", "churn", "churn-model", "a_1", "0", "a-b_c-9", "x" * 100, "Churn", "a/b",
               "a:b", "folder:artifact", "classification/dvclive:models/nn", "a.b:c",
               "src/models.v2:x"]
INVALID_NAMES = [
    "../x", "a b", "A@B", "", "a#b", "-a", "a-", "x" * 101, "a/", "/a", "a:b:c", "a:",
    "_a", "a_", ".", "..", "a.b", "a=b", "a!", " a", "a ", "\n", "é", ":a", "a:b/",
    # GTO's grammar allows these dir parts, git refuses them in a tag name
    "../x:y", "..:x", "a//b:c", "/abs:x", ".hidden:x", "x.lock/y:z", "a./b:c", "a//b",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_check_name_accepts_safe_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_check_name_rejects_unsafe_names(name: str) -> None:
    with pytest.raises(UsageError) as info:
        check_name(name)
    assert info.value.exit_code == ExitCode.USAGE == 2
    assert info.value.hint


def test_check_name_message_names_what_and_value() -> None:
    with pytest.raises(UsageError, match="invalid environment name 'dir:prod'"):
        check_name("dir:prod", "environment name")  # only models take a dir: prefix
    with pytest.raises(UsageError, match=r"\(empty\)"):
        check_name("")


@pytest.mark.parametrize("name", ["churn\n", "a\n"])
def test_check_name_rejects_trailing_newline(name: str) -> None:
    with pytest.raises(UsageError):
        check_name(name)


# --- round trips ---------------------------------------------------------------------------------

EVENTS = [
    TagEvent(REGISTER, "churn", "v1.0.0"),
    TagEvent(REGISTER, "churn", "v1.0.0", counter=7),
    TagEvent(REGISTER, "churn-model", "v0.1.0-rc.1"),
    TagEvent(REGISTER, "churn-model", "v2.3.4-alpha.1.x-y+build.5", counter=12),
    TagEvent(REGISTER, "a_1", "v10.20.30+sha.abc123"),
    TagEvent(DEREGISTER, "churn", "v1.0.0", counter=3),
    TagEvent(DEREGISTER, "churn", "v1.0.0-beta.2+exp.sha.5114f85", counter=0),
    TagEvent(ASSIGN, "churn", stage="production", counter=1),
    TagEvent(ASSIGN, "m0", stage="stage_2-b", counter=99999),
    TagEvent(UNASSIGN, "churn", stage="staging", counter=4),
    TagEvent(DEPRECATE, "churn"),
    TagEvent(DEPRECATE, "churn", counter=9),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: format_tag(e))
def test_round_trip(event: TagEvent) -> None:
    assert parse_tag(format_tag(event)) == event


@pytest.mark.parametrize(
    ("event", "tag"),
    [
        (TagEvent(REGISTER, "churn", "v1.2.3"), "churn@v1.2.3"),
        (TagEvent(REGISTER, "churn", "1.2.3"), "churn@v1.2.3"),  # the 'v' is added
        (TagEvent(REGISTER, "churn", "v1.2.3", counter=2), "churn@v1.2.3#2"),
        (TagEvent(DEREGISTER, "churn", "v1.2.3", counter=5), "churn@v1.2.3!#5"),
        (TagEvent(ASSIGN, "churn", stage="prod", counter=3), "churn#prod#3"),
        (TagEvent(UNASSIGN, "churn", stage="prod", counter=4), "churn#prod!#4"),
        (TagEvent(DEPRECATE, "churn"), "churn@deprecated"),
        (TagEvent(DEPRECATE, "churn", counter=6), "churn@deprecated#6"),
    ],
)
def test_format_tag_spelling(event: TagEvent, tag: str) -> None:
    assert format_tag(event) == tag
    # GTO reads what we write.
    assert tag_re.search(tag) is not None


# --- reading what GTO accepts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "event"),
    [
        ("dir=name@v1.0.0", TagEvent(REGISTER, "dir:name", "v1.0.0")),
        ("path/to.dir=name@v1.0.0#2", TagEvent(REGISTER, "path/to.dir:name", "v1.0.0", counter=2)),
        ("Mixed_Case@v1.0.0", TagEvent(REGISTER, "Mixed_Case", "v1.0.0")),
        ("a/b#prod#3", TagEvent(ASSIGN, "a/b", stage="prod", counter=3)),
        ("a#Prod/EU#3", TagEvent(ASSIGN, "a", stage="Prod/EU", counter=3)),
        ("a@v1.0.0!", TagEvent(DEREGISTER, "a", "v1.0.0")),
        ("a#prod!", TagEvent(UNASSIGN, "a", stage="prod")),
        # GTO's legacy assignment without a counter is still an assignment tag for GTO.
        ("a#prod", TagEvent(ASSIGN, "a", stage="prod")),
        ("a@deprecated", TagEvent(DEPRECATE, "a")),
        ("a@created", TagEvent(CREATE, "a")),
        ("a@created#4", TagEvent(CREATE, "a", counter=4)),
        ("churn@v1.0.0-rc.1+b.7#10", TagEvent(REGISTER, "churn", "v1.0.0-rc.1+b.7", counter=10)),
    ],
)
def test_parse_gto_tags(tag: str, event: TagEvent) -> None:
    assert parse_tag(tag) == event


def test_created_parses_as_create() -> None:
    parsed = parse_tag("churn@created")
    assert parsed is not None
    assert parsed.kind == CREATE
    assert parsed.model == "churn"


NOT_REGISTRY_TAGS = [
    "a@v1.2", "a@1.2.3", "a@v01.2.3", "a@v1.0.0#", "@v1.0.0", "a@vlatest", "a#prod#x",
    "", "v1.0.0", "a", "a@", "a#", "a@v1.0.0-", "a@v1.0.0+", "a@v1.0.0!!", "a@deprecated!",
    "a@created!", "a@greatest", "a.b@v1.0.0", "x=y=z@v1.0.0", "-a@v1.0.0", "a-@v1.0.0",
    "a@v1.0.0#-1", "a#-prod#1", "a@V1.0.0", "a @v1.0.0", "a@v1.0.0 ", "a:b@v1.0.0",
]


@pytest.mark.parametrize("tag", NOT_REGISTRY_TAGS)
def test_not_registry_tags(tag: str) -> None:
    assert parse_tag(tag) is None


# --- names as GTO's grammar has them, and as paths ------------------------------------------------


@settings(max_examples=60, deadline=None)  # a git process per example
@given(st.text(alphabet="aZ09-_/.:=@ ", max_size=12))
def test_check_name_agrees_with_gto_grammar(text: str) -> None:
    """A model name is valid iff GTO's fullname grammar accepts it; an environment name iff
    GTO's name grammar does."""
    for what, regex in (("model name", fullname_re), ("environment name", name_re)):
        try:
            check_name(text, what)
            ours = True
        except UsageError:
            ours = False
        gto_ok = bool(regex.search(text))
        git_ok = subprocess.run(["git", "check-ref-format", f"refs/tags/{text.replace(':', '=')}"],
                                capture_output=True, check=False).returncode == 0
        assert ours == (gto_ok and git_ok), (what, text)


@pytest.mark.parametrize(
    ("event", "tag"),
    [
        (TagEvent(REGISTER, "folder:artifact", "v1.0.0"), "folder=artifact@v1.0.0"),
        (TagEvent(ASSIGN, "classification/dvclive:models/nn", stage="Prod", counter=2),
         "classification/dvclive=models/nn#Prod#2"),
        (TagEvent(DEPRECATE, "Big/Name"), "Big/Name@deprecated"),
    ],
)
def test_format_tag_maps_monorepo_names_as_gto(event: TagEvent, tag: str) -> None:
    assert format_tag(event) == tag
    assert gto_parse_name(tag)["name"] == event.model  # GTO reads the name back
    assert parse_tag(tag) == event


PATH_NAMES = ["churn", "Churn", "a/b", "../../etc:passwd", "..:x", "a.b:c", "dir:name",
              "x" * 100, "a_b-c", "%41"]


@pytest.mark.parametrize("name", PATH_NAMES)
def test_path_part_stays_in_its_directory(name: str, tmp_path: pytest.TempPathFactory) -> None:
    part = path_part(name)
    assert "/" not in part and "." not in part and part not in ("", ".", "..")
    base = tmp_path / "models"  # type: ignore[operator]
    assert (base / part).resolve().parent == base.resolve()


def test_path_part_keeps_lowercase_names_and_is_injective() -> None:
    assert path_part("churn-model_2") == "churn-model_2"  # existing registries keep their paths
    parts = {path_part(n) for n in PATH_NAMES}
    assert len(parts) == len(PATH_NAMES)
    assert path_part("Churn").lower() != path_part("churn").lower()  # case-insensitive disks
    with pytest.raises(UsageError):
        path_part("")


@given(st.text(alphabet="aZ09-_/.:", min_size=1, max_size=20))
def test_path_part_is_a_single_safe_component(name: str) -> None:
    part = path_part(name)
    assert part and "/" not in part and "." not in part


# --- format_tag refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        TagEvent(CREATE, "churn"),
        TagEvent("bogus", "churn", "v1.0.0"),
        TagEvent(REGISTER, "dir=name", "v1.0.0"),
        TagEvent(REGISTER, "../x", "v1.0.0"),
        TagEvent(REGISTER, "", "v1.0.0"),
        TagEvent(ASSIGN, "churn", stage="a:b", counter=1),
        TagEvent(ASSIGN, "churn", stage="Prod EU", counter=1),
        TagEvent(REGISTER, "churn", None),
        TagEvent(REGISTER, "churn", ""),
        TagEvent(DEREGISTER, "churn", "v1.0.0"),  # needs a counter
        TagEvent(DEREGISTER, "churn", "v1.0.0", counter=-1),
        TagEvent(ASSIGN, "churn", stage="prod"),
        TagEvent(ASSIGN, "churn", counter=1),  # needs a stage
        TagEvent(UNASSIGN, "churn", stage="prod"),
        TagEvent(UNASSIGN, "churn", counter=2),
    ],
    ids=repr,
)
def test_format_tag_refuses(event: TagEvent) -> None:
    with pytest.raises(UsageError) as info:
        format_tag(event)
    assert info.value.exit_code == 2


def test_format_tag_refuses_create_kind_by_name() -> None:
    with pytest.raises(UsageError, match="cannot write a 'create' tag"):
        format_tag(TagEvent(CREATE, "churn"))


# --- properties ----------------------------------------------------------------------------------

TAG_PIECES = st.sampled_from([
    "a", "Z", "churn", "0", "9", "-", "_", "/", ".", "=", ":", "@", "#", "!", "v", "V", " ",
    "\n", "1.2.3", "0.0.1", "01.2.3", "1.2", "-rc.1", "-01", "+b.7", "+", "deprecated",
    "created", "latest", "prod", "#3", "é", "\x00",
])
TAGISH = st.lists(TAG_PIECES, max_size=8).map("".join)


@given(st.text())
def test_parse_tag_never_raises_on_any_text(text: str) -> None:
    result = parse_tag(text)
    assert result is None or isinstance(result, TagEvent)


@given(st.one_of(TAGISH, st.text(alphabet="aZ09-_/.=:@#!v+ \n", max_size=30)))
def test_parse_tag_agrees_with_gto_on_tagish_strings(text: str) -> None:
    ours = parse_tag(text)
    assert (ours is None) == (tag_re.search(text) is None)
    if ours is not None and ours.kind != CREATE:
        _assert_same_as_gto(text, ours)


NAMES = st.from_regex(NAME_RE, fullmatch=True).filter(lambda s: len(s) <= 100 and "\n" not in s)
NUM = st.integers(min_value=0, max_value=10**6)
PRE_ID = st.one_of(
    NUM.map(str),
    st.from_regex(r"[0-9]*[a-zA-Z-][0-9a-zA-Z-]*", fullmatch=True).filter(lambda s: "\n" not in s),
)
BUILD_ID = st.from_regex(r"[0-9a-zA-Z-]+", fullmatch=True).filter(lambda s: "\n" not in s)


@st.composite
def versions(draw: st.DrawFn) -> str:
    text = f"v{draw(NUM)}.{draw(NUM)}.{draw(NUM)}"
    pre = draw(st.lists(PRE_ID, max_size=3))
    build = draw(st.lists(BUILD_ID, max_size=3))
    if pre:
        text += "-" + ".".join(pre)
    if build:
        text += "+" + ".".join(build)
    return text


COUNTERS = st.integers(min_value=0, max_value=10**9)


@st.composite
def events(draw: st.DrawFn) -> TagEvent:
    kind = draw(st.sampled_from([REGISTER, DEREGISTER, ASSIGN, UNASSIGN, DEPRECATE]))
    model = draw(NAMES)
    # register and deprecate may go without a counter; the others always have one
    counter = draw(st.none() | COUNTERS) if kind in (REGISTER, DEPRECATE) else draw(COUNTERS)
    version = draw(versions()) if kind in (REGISTER, DEREGISTER) else None
    stage = draw(NAMES) if kind in (ASSIGN, UNASSIGN) else None
    return TagEvent(kind, model, version, stage, counter)


@given(events())
def test_round_trip_property(event: TagEvent) -> None:
    tag = format_tag(event)
    assert parse_tag(tag) == event
    _assert_same_as_gto(tag, event)


def _assert_same_as_gto(tag: str, event: TagEvent) -> None:
    parsed = gto_parse_name(tag)
    assert parsed["name"] == event.model
    assert parsed["action"].value == event.kind
    assert parsed.get("version") == event.version
    assert parsed.get("stage") == event.stage
    assert parsed.get("counter") == event.counter


# --- cross-check with GTO on a fixed list --------------------------------------------------------

SAMPLES = [
    # registry tags
    "churn@v1.0.0", "churn@v1.0.0#1", "churn@v0.0.0", "churn@v1.2.3-rc.1", "churn@v1.2.3+b.1",
    "churn@v1.2.3-alpha.beta.1+exp.sha.5114f85#4", "churn@v1.0.0!#2", "churn@v1.0.0!",
    "churn#prod#1", "churn#prod!#2", "churn#prod", "churn#prod!", "churn@deprecated",
    "churn@deprecated#3", "churn@created", "churn@created#1", "dir=name@v1.0.0",
    "a/b/c=name#prod#5", "Mixed_Case@v1.0.0", "a/b#prod#3", "a-b_c@v10.20.30", "0@v1.0.0",
    # not registry tags
    "a@v1.2", "a@1.2.3", "a@v01.2.3", "a@v1.0.0#", "@v1.0.0", "a@vlatest", "a#prod#x",
    "v1.0.0", "release-1.0", "churn", "churn@", "churn#", "churn@v1.0.0-", "churn@v1.0.0+",
    "churn@v1.0.0-01", "churn@deprecated!", "_a@v1.0.0", "a_@v1.0.0", "a..b@v1.0.0",
    "x=y=z@v1.0.0", "a@v1.0.0#1#2", "a#prod#1!", "a:b@v1.0.0",
]


@pytest.mark.parametrize("tag", SAMPLES)
def test_parse_tag_none_iff_gto_rejects(tag: str) -> None:
    assert (parse_tag(tag) is None) == (tag_re.search(tag) is None)
