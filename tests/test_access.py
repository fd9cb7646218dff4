"""Roles and permissions from .mlops/access.yaml: the matrix, unknown members, email matching,
and `require`'s refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlopsctl import manifests as mf
from mlopsctl.access import allowed, load_access, require, roles_of
from mlopsctl.errors import CheckFailed, EnvironmentProblem, ExitCode
from mlopsctl.project import Project
from mlopsctl.templates import read_template

TEMPLATE_ROLES = mf.parse_yaml(read_template("access.yaml"), mf.Access, "access.yaml").roles


def access_with(*members: tuple[str, list[str]]) -> mf.Access:
    return mf.Access(roles=TEMPLATE_ROLES,
                     members=[mf.Member(email=e, roles=r) for e, r in members])


ACCESS = access_with(
    ("ada@example.com", ["admin"]),
    ("rel@example.com", ["releaser"]),
    ("dev@example.com", ["developer"]),
    ("vic@example.com", ["viewer"]),
)

# (action, env) -> who may: admin, releaser, developer, viewer
MATRIX = [
    (("promote", "staging"), (True, True, True, False)),
    (("promote", "production"), (True, True, False, False)),
    (("promote", "canary"), (True, True, False, False)),
    (("promote", None), (True, True, False, False)),  # every environment
    (("rollback", "staging"), (True, True, True, False)),
    (("rollback", "production"), (True, True, False, False)),
    (("bump", None), (True, True, True, False)),
    (("validate", "staging"), (True, True, True, False)),  # a plain action covers every env
    (("deprecate", None), (True, False, False, False)),
    (("sync", "production"), (True, True, False, False)),
    (("show", None), (True, True, True, True)),
    (("fetch", None), (True, True, True, True)),
    (("frobnicate", "production"), (True, False, False, False)),
]


@pytest.mark.parametrize(("action_env", "expected"), MATRIX,
                         ids=[f"{a}:{e or '-'}" for (a, e), _ in MATRIX])
def test_permission_matrix(action_env: tuple[str, str | None],
                           expected: tuple[bool, bool, bool, bool]) -> None:
    action, env = action_env
    who = ("ada@example.com", "rel@example.com", "dev@example.com", "vic@example.com")
    assert tuple(allowed(ACCESS, email, action, env) for email in who) == expected


@pytest.mark.parametrize("action", ["bump", "validate", "promote", "rollback", "sync",
                                    "deprecate", "deregister"])
@pytest.mark.parametrize("env", [None, "staging", "production"])
def test_viewer_may_do_nothing_that_writes(action: str, env: str | None) -> None:
    assert not allowed(ACCESS, "vic@example.com", action, env)


def test_unknown_member_may_do_nothing() -> None:
    assert roles_of(ACCESS, "mallory@example.com") == []
    for action in ("show", "promote", "bump", "*"):
        assert not allowed(ACCESS, "mallory@example.com", action)
        assert not allowed(ACCESS, "mallory@example.com", action, "staging")


@pytest.mark.parametrize("email", ["ADA@example.com", "Ada@Example.COM", " ada@example.com ",
                                   "<ada@example.com>"])
def test_email_matches_case_insensitively(email: str) -> None:
    assert roles_of(ACCESS, email) == ["admin"]
    assert allowed(ACCESS, email, "promote", "production")


def test_stored_email_case_does_not_matter_either() -> None:
    access = access_with(("Dev@Example.com", ["developer"]))
    assert allowed(access, "dev@example.com", "promote", "staging")
    assert not allowed(access, "dev@example.com", "promote", "production")


def test_roles_merge_across_entries_and_undefined_roles_grant_nothing() -> None:
    access = access_with(("dev@example.com", ["developer", "ghost"]),
                         ("DEV@example.com", ["releaser", "developer"]))
    assert roles_of(access, "dev@example.com") == ["developer", "ghost", "releaser"]
    assert allowed(access, "dev@example.com", "promote", "production")
    assert not allowed(access_with(("x@example.com", ["ghost"])), "x@example.com", "show")


def test_env_scoped_and_wildcard_permissions() -> None:
    access = mf.Access(roles={"ops": ["promote:*", "rollback:production"]},
                       members=[mf.Member(email="ops@example.com", roles=["ops"])])
    assert allowed(access, "ops@example.com", "promote", "anywhere")
    assert allowed(access, "ops@example.com", "promote")
    assert allowed(access, "ops@example.com", "rollback", "production")
    assert not allowed(access, "ops@example.com", "rollback", "staging")
    assert not allowed(access, "ops@example.com", "rollback")  # every env: not granted
    assert not allowed(access, "ops@example.com", "bump")


# --- require, on a real registry ------------------------------------------------------------------


def add_members(root: Path, *members: tuple[str, list[str]]) -> None:
    path = root / ".mlops" / "access.yaml"
    access = mf.load(path, mf.Access)
    access.members.extend(mf.Member(email=e, roles=r) for e, r in members)
    mf.save(path, access)


def test_load_access_after_init_has_the_initialiser_as_admin(registry: Path) -> None:
    access = load_access(Project.open())
    assert roles_of(access, "ada@example.com") == ["admin"]
    assert set(access.roles) == {"viewer", "developer", "releaser", "admin"}


def test_require_passes_silently_when_allowed(registry: Path) -> None:
    add_members(registry, ("dev@example.com", ["developer"]))
    project = Project.open()
    require(project, "ada@example.com", "promote", "production")
    require(project, "DEV@example.com", "promote", "staging")
    require(project, "dev@example.com", "bump")


def test_require_names_email_permission_roles_and_where_to_fix(registry: Path) -> None:
    add_members(registry, ("dev@example.com", ["developer"]))
    with pytest.raises(CheckFailed) as caught:
        require(Project.open(), "dev@example.com", "promote", "production")
    exc = caught.value
    assert exc.exit_code == ExitCode.FAILED
    assert "dev@example.com" in exc.message
    assert "promote:production" in exc.message
    assert "developer" in exc.message
    assert exc.hint and ".mlops/access.yaml" in exc.hint and "admin" in exc.hint
    assert "releaser" in exc.hint  # a role that would grant it


def test_require_refuses_a_non_member(registry: Path) -> None:
    with pytest.raises(CheckFailed) as caught:
        require(Project.open(), "mallory@example.com", "promote", "staging")
    assert "mallory@example.com" in caught.value.message
    assert "not a member" in caught.value.message
    assert caught.value.hint and ".mlops/access.yaml" in caught.value.hint


def test_require_on_a_malformed_access_file_is_an_environment_problem(registry: Path) -> None:
    (registry / ".mlops" / "access.yaml").write_text("roles: {admin: ['*']}\nmembers: [{}]\n")
    with pytest.raises(EnvironmentProblem) as caught:
        require(Project.open(), "ada@example.com", "promote", "staging")
    assert ".mlops/access.yaml" in caught.value.message
