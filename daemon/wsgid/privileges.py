"""Who the workers run as: the `user` and `group` settings.

Owns: turning `user`/`group` (names or numeric ids) into a uid, a gid and the
supplementary groups (`initgroups`); checking at start-up that the switch is possible, so a
typo is a configuration error (exit 2) naming the setting, its value and where
it came from, rather than a worker that cannot boot; and the switch itself,
done in each worker right after the fork and before the application is
imported.

Theory of operation. The master keeps the identity it was started with: it
binds the listeners (a port below 1024 needs root), opens the log files and
writes the pidfile, exactly as nginx and gunicorn do. Only the workers, which
run the application and so parse untrusted input, become the configured user.
The order of the switch is the only safe one: supplementary groups first,
then the gid, then the uid; once the uid is gone the process can no longer
change its groups. The supplementary groups are the primary group alone, or
with the `initgroups` setting every group the group database lists the user
in (what initgroups(3) sets; just the primary group when the uid has no passwd
entry). Root's supplementary groups are always replaced, never kept, even
where gunicorn keeps them (its `initgroups` off): a worker running as `nobody`
but still in group `root` or `shadow` would defeat the point. A process that already
is the configured user and group and has no CAP_SETGID (a container started as that
user) keeps the groups it was started with, which it could not change.

What it does not do: chown files (the master opened them; the workers inherit
the descriptors), or set a mode/owner on unix socket files per bind (see
docs/systemd.md: put the socket in a directory with the right permissions, or
let systemd create it with `SocketUser=`/`SocketMode=`).
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Mapping
from typing import NamedTuple

# Linux capability numbers (linux/capability.h), to tell whether a non-root
# master could still switch identities.
_CAP_SETGID = 6
_CAP_SETUID = 7


class PrivilegeError(Exception):
    """`user`/`group` cannot be used; str() is the one-paragraph message."""


class Credentials(NamedTuple):
    """The identity a worker takes on."""

    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, resolved now (NSS is not re-read per fork)
    user: str | None  # the passwd name, when there is one (for messages)

    def __str__(self) -> str:
        name = self.user if self.user is not None else str(self.uid)
        return f"{name} (uid {self.uid}, gid {self.gid})"


def resolve(
    user: str | None,
    group: str | None,
    sources: Mapping[str, str] | None = None,
    initgroups: bool = False,
) -> Credentials | None:
    """The credentials `user`/`group` name, or None when neither is set.

    `initgroups`: the supplementary groups are all of the user's, not just the primary one.

    Raises PrivilegeError naming the setting, its value and its source when a
    name is unknown, or when this process could not switch to that identity.
    """
    if user is None and group is None:
        return None
    origin = dict(sources or {})
    name: str | None = None
    if user is None:
        uid = os.getuid()
        entry = _passwd_by_uid(uid)
        name = entry.pw_name if entry is not None else None
        primary = os.getgid()
    else:
        entry = _passwd(user)
        if entry is None:
            if not user.isdigit():
                raise PrivilegeError(
                    f"user = {user!r}{_from(origin, 'user')}: no such user in the password"
                    " database; give an existing user name or a numeric uid"
                )
            uid, primary = int(user), os.getgid()
        else:
            uid, primary, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    gid = primary if group is None else _gid(group, origin)
    if user is not None and entry is None and group is None and uid != os.getuid():
        # A bare numeric uid with no passwd entry has no primary group to take:
        # keeping ours (often root's) would be a surprise, so ask for one.
        raise PrivilegeError(
            f"user = {user!r}{_from(origin, 'user')}: uid {uid} has no entry in the password"
            " database, so it has no primary group; set `group` as well"
        )
    groups = _supplementary(name, gid) if initgroups and name is not None else (gid,)
    creds = Credentials(uid=uid, gid=gid, groups=groups, user=name)
    _check_can_switch(creds, user, group, origin)
    return creds


def drop(creds: Credentials) -> None:
    """Become `creds` for good (called in a freshly forked worker).

    Raises OSError if the kernel refuses; the caller treats that as a boot
    failure, so a worker never serves with the master's identity by mistake.
    """
    if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) == (
        creds.uid,
        creds.uid,
        creds.gid,
        creds.gid,
    ) and (set(os.getgroups()) == set(creds.groups) or not _has_capability(_CAP_SETGID)):
        # Already there: nothing to give up, nothing that could fail. Without CAP_SETGID (a
        # container that starts as the configured user, with the groups its runtime gave it)
        # the groups cannot change, and keeping the ones we started with gives the worker no
        # more than the master has; gunicorn keeps them too.
        return
    os.setgroups(list(creds.groups))
    os.setresgid(creds.gid, creds.gid, creds.gid)
    os.setresuid(creds.uid, creds.uid, creds.uid)
    # setres*id changes real, effective and saved ids together; verify, because
    # a half-done switch (an LSM, a seccomp filter returning 0) must not serve.
    if os.getresuid() != (creds.uid,) * 3 or os.getresgid() != (creds.gid,) * 3:
        raise OSError(f"could not switch to {creds}: ids are {os.getresuid()}/{os.getresgid()}")


def _from(origin: Mapping[str, str], name: str) -> str:
    source = origin.get(name)
    return f" (from {source})" if source and source != "default" else ""


def _passwd(user: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        pass
    if user.isdigit():
        return _passwd_by_uid(int(user))
    return None


def _passwd_by_uid(uid: int) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None


def _gid(group: str, origin: Mapping[str, str]) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    if group.isdigit():
        return int(group)
    raise PrivilegeError(
        f"group = {group!r}{_from(origin, 'group')}: no such group in the group database;"
        " give an existing group name or a numeric gid"
    )


def _supplementary(name: str, gid: int) -> tuple[int, ...]:
    """The groups `initgroups(name, gid)` would set, with `gid` first."""
    try:
        found = os.getgrouplist(name, gid)
    except OSError:
        found = [gid]
    return (gid, *sorted({g for g in found if g != gid}))


def _check_can_switch(
    creds: Credentials, user: str | None, group: str | None, origin: Mapping[str, str]
) -> None:
    """Refuse at start-up what the workers' setuid/setgid would refuse after the fork."""
    same_uid = creds.uid == os.getuid() == os.geteuid()
    same_gid = creds.gid == os.getgid() == os.getegid()
    if same_uid and same_gid:
        return  # `drop` changes nothing it could not
    # Root is checked too: a container may run it without these capabilities (Kubernetes'
    # `drop: [ALL]`), and the workers' switch would fail after the fork. The groups are
    # replaced whenever the uid changes, which takes CAP_SETGID even with the same gid.
    same_groups = same_gid and set(os.getgroups()) == set(creds.groups)
    # Each switch: whether it is needed, the capability it takes (its number and name), the
    # setting that asks for it (the other one when that one was not given), what to, and
    # what wsgid runs as.
    uid, gid = os.geteuid(), os.getegid()
    switches = (
        (same_uid, _CAP_SETUID, "CAP_SETUID", "user", "group", str(creds), f"uid {uid}"),
        (
            same_groups,
            _CAP_SETGID,
            "CAP_SETGID",
            "group",
            "user",
            f"gid {creds.gid}",
            f"uid {uid}, gid {gid}",
        ),
    )
    given = {"user": user, "group": group}
    for same, capability, cap_name, asked, other, target, current in switches:
        if same or _has_capability(capability):
            continue
        setting = asked if given[asked] is not None else other
        needs = (
            f"root's {cap_name} capability, which wsgid runs without (uid 0)"
            if uid == 0
            else f"root (wsgid runs as {current})"
        )
        raise PrivilegeError(
            f"{setting} = {given[setting]!r}{_from(origin, setting)}: switching the workers to"
            f" {target} needs {needs}; start it as root with that capability, or drop the"
            " setting"
        )


def _has_capability(number: int) -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> number & 1)
    except OSError:
        pass
    return False
