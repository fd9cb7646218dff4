"""Who may do what: roles and members from ``.mlops/access.yaml``.

A role is a list of permissions, each ``"*"`` (everything), an action (``"promote"``: in every
environment) or an action in one environment (``"promote:staging"``; ``"promote:*"`` means the
same as ``"promote"``). Members are matched by git email, case-insensitively. This is the local,
fast check; where config says ``signing: required``, ``verify --signatures`` (in CI) checks the
same permissions against the key that signed each event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlopsctl import manifests as mf
from mlopsctl.errors import CheckFailed

if TYPE_CHECKING:
    from mlopsctl.project import Project

ACCESS_FILE = ".mlops/access.yaml"


def load_access(project: Project) -> mf.Access:
    """The registry's access.yaml (EnvironmentProblem, exit 3, when missing or malformed)."""
    path = project.ws.access_path
    return mf.load(path, mf.Access, project.ws.rel(path))


def _norm(email: str) -> str:
    return email.strip().strip("<>").strip().casefold()


def members_of(access: mf.Access, email: str) -> list[mf.Member]:
    """The member entries for ``email`` (usually one; several are merged)."""
    wanted = _norm(email)
    return [m for m in access.members if _norm(m.email) == wanted]


def is_member(access: mf.Access, email: str) -> bool:
    return bool(members_of(access, email))


def roles_of(access: mf.Access, email: str) -> list[str]:
    """The roles of ``email``, in file order without repeats; [] for a non-member."""
    roles: list[str] = []
    for member in members_of(access, email):
        roles.extend(r for r in member.roles if r not in roles)
    return roles


def permission(action: str, env: str | None = None) -> str:
    """The permission string an action needs: ``promote:production``, or ``bump``."""
    return f"{action}:{env}" if env else action


# Actions granted along with another: whoever may release to an environment may also take a
# version out of it (so access files written before `unassign` existed keep working).
IMPLIED_BY = {"unassign": ("promote",)}


def grants(permissions: list[str], action: str, env: str | None = None) -> bool:
    """Whether a role's permission list allows ``action`` (in ``env``, when given)."""
    for act in (action, *IMPLIED_BY.get(action, ())):
        for held in permissions:
            held = held.strip()
            if held in ("*", act, f"{act}:*"):
                return True
            if env is not None and held == f"{act}:{env}":
                return True
    return False


def allowed(access: mf.Access, email: str, action: str, env: str | None = None) -> bool:
    """Whether any role of ``email`` allows ``action`` (in ``env``). Roles not defined under
    ``roles:`` grant nothing; non-members may do nothing."""
    return any(grants(access.roles.get(role, []), action, env)
               for role in roles_of(access, email))


def roles_granting(access: mf.Access, action: str, env: str | None = None) -> list[str]:
    """The defined roles that would allow ``action`` (in ``env``): for hints."""
    return [role for role, perms in access.roles.items() if grants(perms, action, env)]


def require(project: Project, identity_email: str, action: str, env: str | None = None) -> None:
    """Raise CheckFailed (exit 1) unless ``identity_email`` may perform ``action`` (in ``env``)."""
    access = load_access(project)
    check(access, identity_email, action, env)


def check(access: mf.Access, identity_email: str, action: str, env: str | None = None) -> None:
    """``require`` on an already loaded access file."""
    needed = permission(action, env)
    if not is_member(access, identity_email):
        raise CheckFailed(
            f"{identity_email} is not a member of this registry ({ACCESS_FILE}), so may not "
            f"{needed}",
            hint=f"ask an admin to add you under `members:` in {ACCESS_FILE}, with a role "
            f"granting '{needed}'{_suggest(access, action, env)}",
        )
    if allowed(access, identity_email, action, env):
        return
    roles = roles_of(access, identity_email)
    undefined = [r for r in roles if r not in access.roles]
    held = ", ".join(roles) if roles else "none"
    extra = f" (not defined under `roles:`: {', '.join(undefined)})" if undefined else ""
    raise CheckFailed(
        f"{identity_email} lacks the permission '{needed}': their roles ({held}){extra} do not "
        "grant it",
        hint=f"ask an admin to add a role granting '{needed}' to your entry in "
        f"{ACCESS_FILE}{_suggest(access, action, env)}",
    )


def _suggest(access: mf.Access, action: str, env: str | None) -> str:
    roles = [r for r in roles_granting(access, action, env) if r != "admin"]
    return f" (e.g. {', '.join(roles)})" if roles else ""
