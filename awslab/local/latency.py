"""How long things take on the local AWS: latency profiles and per-resource timelines.

A profile maps a transition (``rds.create``, ``ec2.terminate`` ...) to the states a resource
passes through and for how long. ``instant`` is moto's own behaviour (no transitional states).
``realistic`` uses AWS's typical durations, multiplied by a time scale: ``--latency realistic
--time-scale 0.01`` makes a 15-minute Multi-AZ creation take 9 seconds. Explicit seconds per
transition override either: ``--latency rds.create=5,ec2.run=1`` or ``--latency realistic,ec2.run=5``.

Typical durations on AWS (seconds), and where they come from:

| transition                | states (seconds)                   | source |
|---------------------------|------------------------------------|--------|
| rds.create (Single-AZ)    | creating 420, backing-up 120       | RDS User Guide, "Creating a DB instance": "can take several minutes"; observed 5-10 min for db.t3.micro |
| rds.create.multi_az       | creating 780, backing-up 180       | Multi-AZ adds the standby's creation and sync; observed 12-20 min |
| rds.cluster.create        | creating 900, backing-up 180       | a Multi-AZ DB cluster: three instances in three AZs made together (RDS gives no figure; an estimate above rds.create.multi_az) |
| rds.cluster.failover      | failing-over 35                    | "failover typically under 35 seconds" (RDS User Guide, "Multi-AZ DB cluster deployments", failover process) |
| rds.replica               | creating 600                       | "Working with read replicas": a snapshot of the source, then a new instance; observed ~10 min |
| rds.restore               | creating 600, backing-up 120       | restores create a new instance from a snapshot; observed ~10 min |
| rds.modify                | modifying 120                      | class/storage changes with ApplyImmediately; observed minutes |
| rds.reboot                | rebooting 60                       | a reboot (with failover for Multi-AZ: 60-120 s per the User Guide) |
| rds.failover              | rebooting 90                       | reboot with failover: "typically 60-120 s" (RDS User Guide, Multi-AZ failover) |
| rds.backup-window         | 86400 (a day)                      | automated backups: one base backup a day in the backup window, WAL in between; retention days scale the same |
| rds.os-update             | maintenance 300                    | an OS patch's reboot (system-update): a Single-AZ instance is offline while it is patched, "a few minutes" (RDS User Guide, "Maintaining a DB instance", "Applying updates"); on Multi-AZ the standby is patched so (unseen by clients), then the failover (rds.failover) is the downtime, then the old primary |
| rds.maintenance-window    | 604800 (a week)                    | the weekly PreferredMaintenanceWindow (RDS User Guide, "The Amazon RDS maintenance window"): the wait until its next start is scaled as a week is (realistic: the time scale; `rds.maintenance-window=60`: a week lasts a minute); `instant`: the window arrives at once (within a second) |
| rds.promote               | modifying 120, rebooting 60        | PromoteReadReplica: "can take several minutes", a reboot at the end |
| rds.delete                | deleting 300                       | observed 4-10 min (longer with a final snapshot) |
| rds.snapshot              | creating 240                       | manual snapshot of a 20 GiB gp3 volume; first snapshot is full |
| elasticache.create        | creating 540                       | ElastiCache User Guide: "creating" for several minutes; observed 7-12 min |
| elasticache.delete        | deleting 300                       | observed 4-8 min |
| elasticache.snapshot      | creating 300                       | observed minutes |
| elasticache.failover      | modifying 60                       | TestFailover: a replica is promoted within about a minute |
| ec2.run                   | pending 30                         | EC2 User Guide, instance lifecycle: pending until running, ~30 s |
| ec2.terminate             | shutting-down 45                   | observed 30-90 s |
| ec2.eni-drain             | 20                                 | network interfaces of a terminated instance are released shortly after |
| ec2.terminated-retention  | 3600                               | "terminated instances remain visible for about an hour" (EC2 User Guide) |

The distance between AZs is in the data path too: each replication stream (a Multi-AZ standby
and a read replica following their primary) passes through a link of the local AWS that delays
every chunk by half the round trip of its AZ pair (``forwarder.py``, ``wire.py``). Round trips
are not scaled by the time scale (a learner measures them in milliseconds); ``instant`` has none:

| link          | round trip (seconds) | source |
|---------------|----------------------|--------|
| net.cross-az  | 0.001                | AWS: AZs are "within 100 km" with "single-digit millisecond" latency; ~1 ms measured between AZs of a region |
| net.same-az   | 0.0002               | within an AZ, a few hundred microseconds between instances |
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from awslab.local.side import note, side

WEEK_S = 7 * 86400
NETWORK: dict[str, float] = {"net.cross-az": 0.001, "net.same-az": 0.0002}   # round trips, never scaled

REALISTIC: dict[str, tuple[tuple[str, float], ...]] = {
    "rds.create": (("creating", 420), ("backing-up", 120)),
    "rds.create.multi_az": (("creating", 780), ("backing-up", 180)),
    "rds.cluster.create": (("creating", 900), ("backing-up", 180)),
    "rds.cluster.failover": (("failing-over", 35),),
    "rds.replica": (("creating", 600),),
    "rds.restore": (("creating", 600), ("backing-up", 120)),
    "rds.modify": (("modifying", 120),),
    "rds.reboot": (("rebooting", 60),),
    "rds.failover": (("rebooting", 90),),
    "rds.backup-window": (("backing-up", 86400),),
    "rds.os-update": (("maintenance", 300),),
    "rds.maintenance-window": (("available", WEEK_S),),
    "rds.promote": (("modifying", 120), ("rebooting", 60)),
    "rds.delete": (("deleting", 300),),
    "rds.snapshot": (("creating", 240),),
    "elasticache.create": (("creating", 540),),
    "elasticache.delete": (("deleting", 300),),
    "elasticache.snapshot": (("creating", 300),),
    "elasticache.failover": (("modifying", 60),),
    "ec2.run": (("pending", 30),),
    "ec2.terminate": (("shutting-down", 45),),
    "ec2.eni-drain": (("draining", 20),),
    "ec2.terminated-retention": (("terminated", 3600),),
}
PROFILES = ("instant", "realistic")


@dataclass
class Latency:
    profile: str = "instant"
    time_scale: float = 1.0
    explicit: dict[str, float] = field(default_factory=dict)

    def phases(self, transition: str) -> list[tuple[str, float]]:
        """The states and their scaled durations (seconds) for a transition; [] when instant."""
        base = REALISTIC.get(transition, ())
        if transition in self.explicit:
            total = self.explicit[transition]
            weight = sum(s for _, s in base) or 1.0
            return [(state, total * s / weight) for state, s in base] if base else []
        if self.profile == "instant":
            return []
        return [(state, s * self.time_scale) for state, s in base]

    def seconds(self, transition: str) -> float:
        return sum(s for _, s in self.phases(transition))

    def week_scale(self) -> float:
        """How long a week of AWS's time lasts here, as a fraction (0 on instant): what scales the
        wait until a maintenance window."""
        return self.seconds("rds.maintenance-window") / WEEK_S

    def round_trip(self, link: str) -> float:
        """The round trip of a link (``net.cross-az``, ``net.same-az``) in seconds; 0 when instant."""
        if link in self.explicit:
            return self.explicit[link]
        return 0.0 if self.profile == "instant" else NETWORK[link]

    def as_dict(self) -> dict:
        return {"profile": self.profile, "time_scale": self.time_scale, "explicit": dict(self.explicit)}


def realistic_seconds(transition: str, time_scale: float) -> float:
    """AWS's typical duration of ``transition`` at ``time_scale``, whatever profile runs (the
    maintenance drill's figures on an ``instant`` local AWS)."""
    return sum(s for _, s in REALISTIC[transition]) * time_scale


def parse(spec: str, time_scale: float = 1.0) -> Latency:
    """``instant``, ``realistic``, ``TRANSITION=SECONDS,...`` or both: ``realistic,ec2.run=5``."""
    profile, explicit = "instant", {}
    for part in (spec or "instant").split(","):
        part = part.strip()
        if part in PROFILES:
            profile = part
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in REALISTIC and name not in NETWORK:
            raise ValueError(f"unknown latency '{name}': use instant, realistic, or TRANSITION=SECONDS with one of "
                             f"{', '.join([*REALISTIC, *NETWORK])}")
        try:
            explicit[name] = float(value)
        except ValueError:
            raise ValueError(f"latency {name}: '{value}' is not a number of seconds") from None
        if not 0 <= explicit[name] < float("inf"):   # also refuses nan
            raise ValueError(f"latency {name}: '{value}' is not a number of seconds (0 or more)")
    return Latency(profile, time_scale, explicit)


_current = Latency()
_lock = threading.Lock()
# The emulated timeline's clock: monotonic within a run, and continued from where the saved state
# left it (plus the wall time since) when a restarted local AWS loads that state, so a DB that was
# 'creating' before a restart or a reboot finishes as it would have, not never or at once.
_offset = 0.0


def now() -> float:
    """Seconds on the local AWS's timeline (what every ``*_at`` time of local/side.py is measured in)."""
    return time.monotonic() + _offset


def resume_clock(saved_now: float, saved_wall: float) -> None:
    """Continue the timeline from a saved state: ``saved_now`` on it at wall time ``saved_wall``."""
    global _offset
    _offset = saved_now + max(0.0, time.time() - saved_wall) - time.monotonic()


def current() -> Latency:
    return _current


def set_current(value: Latency) -> None:
    global _current
    with _lock:
        _current = value


def start(obj, transition: str, then: str | None = None) -> float:
    """Put ``obj`` on the timeline of ``transition``; return when it ends (timeline seconds)."""
    phases, t = [], now()
    for state, secs in current().phases(transition):
        t += secs
        phases.append((t, state))
    note(obj, phases=tuple(phases))
    return t


def phase(obj) -> str | None:
    """The transitional state ``obj`` is in now, or None once its timeline is over."""
    phases = side(obj).phases
    if not phases:
        return None
    t = now()
    for until, state in phases:
        if t < until:
            return state
    note(obj, phases=())
    return None


def wait_out(obj) -> None:
    """Sleep until ``obj``'s timeline is over (an engine down for as long as its reboot lasts;
    at once on the instant profile)."""
    while phase(obj) is not None:
        time.sleep(0.05)


class ExpiringDict(dict):
    """A backend's resource dict whose entries with a ``gone_at`` (local/side.py) vanish at that time.

    Used so a delete can answer "deleting", stay visible (and in use) for a while, then be gone
    and free its id, as on AWS.
    """

    def _purge(self) -> None:
        t = now()
        for key in [k for k, v in dict.items(self) if (gone := side(v).gone_at) is not None and gone <= t]:
            dict.pop(self, key, None)

    def __getitem__(self, key):
        self._purge()
        return dict.__getitem__(self, key)

    def __contains__(self, key):
        self._purge()
        return dict.__contains__(self, key)

    def __iter__(self):
        self._purge()
        return iter(list(dict.keys(self)))

    def __len__(self):
        self._purge()
        return dict.__len__(self)

    def get(self, key, default=None):
        self._purge()
        return dict.get(self, key, default)

    def keys(self):
        self._purge()
        return dict.keys(self)

    def values(self):
        self._purge()
        return dict.values(self)

    def items(self):
        self._purge()
        return dict.items(self)

    def copy(self):
        self._purge()
        return dict(dict.items(self))
