"""The bench's failure phase: each failure under an open-loop probe, with
what a client saw and a timeline.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from webinfra_alerts import Notification, read_mailbox
from webinfra_testlib import wait_for

from tools import lab as labtool
from tools.bench_db_failures import (
    cut_off_primary,
    holder,
    kill_and_start,
    kill_replica,
    lose_quorum,
    stored_notes,
    wait_replicating,
    write_vip_holder,
    writes_outcome,
)
from tools.bench_figures import (
    ProbeSample,
    lost_writes,
    parse_probe,
    timeline_summary,
    write_outage,
    writes_back_after_kill,
)
from tools.bench_report import fmt, plot_timeline
from tools.bench_run import CLIENT, BenchError, ansible_playbook, dexec, log, sh


def vip_holder(lab: labtool.Lab) -> labtool.LabHost:
    return holder(lab, "loadbalancers", lab.vip)


def wait_web_healthy(host: labtool.LabHost, timeout: float = 180) -> None:
    labtool.wait_booted(host, timeout)
    wait_for(
        lambda: dexec(
            host.container,
            "sh",
            "-c",
            "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/",
            check=False,
        ),
        accept=lambda code: code == "200",
        timeout=timeout,
    )


def wait_lb_healthy(host: labtool.LabHost, timeout: float = 180) -> None:
    labtool.wait_booted(host, timeout)
    wait_for(
        lambda: dexec(
            host.container, "systemctl", "is-active", "haproxy", "keepalived", check=False
        ),
        accept=lambda out: out.split() == ["active", "active"],
        timeout=timeout,
    )


@dataclass
class Failure:
    key: str
    name: str
    description: str
    inject: Callable[[list[tuple[float, str]]], None]  # appends (epoch, label) marks
    post_tag: str | None = None  # a write probe: POST unique notes to /api/notes
    after_s: float = 5.0  # the probe goes on this long after the injection


# The keys of --failures, in the order the timelines run: the database
# failover is last, since it leaves the lab on the promoted replica.
FAILURE_KEYS = (
    "kill-web", "kill-master", "reload-haproxy", "reload-nginx", "reload-gunicorn", "deploy",
    "db-replica-kill", "db-partition", "db-quorum-lost", "db-failover",
)  # fmt: skip
# The failures that need the clustered tier (a write VIP).
CLUSTER_ONLY = ("db-replica-kill", "db-partition", "db-quorum-lost")
# How long after the last timeline's start its mail may still arrive: the
# monitoring role's notification path (about 35 s) with room to spare.
NOTIFY_WAIT_S = 60.0


LAB_ON_REPLICA = (
    "the lab runs on the promoted replica {new} ({old} stays stopped, and site.yml "
    "with inventory/lab would treat it as the primary again): `make demo-down demo` "
    "restores the lab's layout"
)


# Kills of the primary on a clustered tier: the report gives the median and
# the worst time until writes come back.
DB_KILLS = 5


def new_primary(lab: labtool.Lab) -> labtool.LabHost:
    """The one running database replica host that replicates from no one now
    (on a clustered tier: the one holding the write virtual IP)."""
    if lab.db_write_vip:
        return write_vip_holder(lab)
    found = []
    for host in lab.hosts:
        if "db_replicas" not in host.groups or labtool.container_state(host.container) != "running":
            continue
        status = dexec(host.container, "mariadb", "-N", "-B", "-e", "SHOW SLAVE STATUS")
        if not status.strip():
            found.append(host)
    if len(found) != 1:
        raise BenchError(f"expected one promoted replica, found {[h.name for h in found]}")
    return found[0]


def failure_phase(
    lab: labtool.Lab,
    outdir: Path,
    rate: float,
    write_rate: float,
    keys: Sequence[str],
    report: dict[str, Any],
) -> None:
    web1, web2 = lab.host("web-01"), lab.host("web-02")
    webs = [web1, web2]

    def kill_web(marks: list[tuple[float, str]]) -> None:
        kill_and_start(marks, web1, 5, wait_web_healthy)

    def kill_master(marks: list[tuple[float, str]]) -> None:
        kill_and_start(marks, vip_holder(lab), 5, wait_lb_healthy, "MASTER")

    def reloads(service: str, hosts: list[labtool.LabHost]) -> Callable[..., None]:
        def inject(marks: list[tuple[float, str]]) -> None:
            marks.append((time.time(), f"first of 20 reloads of {service}"))
            for _ in range(20):
                for host in hosts:
                    dexec(host.container, "systemctl", "reload", service)
                time.sleep(0.5)
            marks.append((time.time(), f"last reload of {service}"))

        return inject

    def deploy(marks: list[tuple[float, str]]) -> None:
        marks.append((time.time(), "deploy_app.yml starts"))
        # The lab's own version: the rolling drain happens all the same, and
        # the lab is left as site.yml made it.
        ansible_playbook("playbooks/deploy_app.yml", log_file=outdir / "ansible-deploy_app.log")
        marks.append((time.time(), "deploy_app.yml done"))

    old_primary = lab.first_in("db_primary")
    replicas = [h for h in lab.hosts if "db_replicas" in h.groups]

    killed: list[labtool.LabHost] = []

    def fail_over_db(marks: list[tuple[float, str]]) -> None:
        if old_primary is None or not replicas:
            raise BenchError("the database failover needs a db_primary host and a replica")
        if lab.db_write_vip:
            # The cluster heals by itself: no playbook runs.
            victim = write_vip_holder(lab)
            killed.append(victim)
            report["lab_state"] = (
                f"the database primary {victim.name} was killed; the cluster promoted "
                "another member and the bench starts it again as a replica"
            )
            marks.append((time.time(), f"docker kill {victim.name} (primary)"))
            sh("docker", "kill", victim.container)
            return
        report["lab_state"] = (
            f"the database primary {old_primary.name} was killed and the failover may not "
            "have finished: `make demo-down demo` restores the lab's layout"
        )
        marks.append((time.time(), f"docker kill {old_primary.name} (primary)"))
        sh("docker", "kill", old_primary.container)
        # The same variables as the failover test of tests/e2e/failure.
        extra = {
            "db_failover_planned": False,
            "db_failover_old_primary": old_primary.name,
            "db_failover_replicas": [r.name for r in replicas],
        }
        marks.append((time.time(), "db_failover.yml starts"))
        ansible_playbook(
            "playbooks/db_failover.yml",
            "-e",
            json.dumps(extra),
            log_file=outdir / "ansible-db_failover.log",
        )
        marks.append((time.time(), "db_failover.yml done"))

    tag = f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    failures = [
        Failure("kill-web", "kill web-01", "docker kill of web-01 under load, docker start 5 s "
                "later, until nginx answers again.", kill_web),
        Failure("kill-master", "kill MASTER load balancer", "docker kill of the load balancer "
                "holding the VIP, docker start 5 s later, until haproxy and keepalived are "
                "active.", kill_master),
        Failure("reload-haproxy", "reload haproxy x20", "systemctl reload haproxy on both load "
                "balancers, 20 times, 0.5 s after each reload returned.",
                reloads("haproxy", [lab.host("lb-01"), lab.host("lb-02")])),
        Failure("reload-nginx", "reload nginx x20", "systemctl reload nginx on both web servers, "
                "20 times, 0.5 s after each reload returned.", reloads("nginx", webs)),
        Failure("reload-gunicorn", "reload gunicorn x20", "systemctl reload webapp (gunicorn "
                "HUP: new workers) on both web servers, 20 times, 0.5 s after each reload "
                "returned (the reload returns once the new workers answer).",
                reloads("webapp", webs)),
        Failure("deploy", "deploy_app.yml", "the rolling deploy playbook (drains each web "
                "server through the HAProxy runtime API, one at a time).", deploy),
        Failure("db-replica-kill", "kill a database replica during writes", "a write probe "
                f"POSTs unique notes to https://VIP/api/notes at {write_rate} writes/s; 3 s in, "
                "docker kill of a replica, docker start 10 s later, until it replicates again.",
                kill_replica(lab), post_tag=f"{tag}-replica"),
        Failure("db-partition", "cut the database primary off the network during writes",
                "the write probe as above; docker network disconnect of the primary (the "
                "majority side, the replica and the quorum device, fences it and promotes), "
                "5 s after the write VIP moved it is reconnected and started again, until it "
                "replicates from the new primary.", cut_off_primary(lab),
                post_tag=f"{tag}-partition"),
        Failure("db-quorum-lost", "lose the database quorum during writes", "the write probe "
                "as above; corosync-qnetd stopped, then docker kill of a replica: the primary "
                "alone has one vote of three and demotes itself (writes answer 503). 15 s "
                "later qnetd starts again, the primary is promoted again, and the replica "
                "starts once it was fenced.", lose_quorum(lab), post_tag=f"{tag}-quorum"),
        Failure("db-failover", "kill the database primary during writes"
                + ("" if lab.db_write_vip else ", then db_failover.yml"),
                f"a write probe POSTs unique notes to https://VIP/api/notes at {write_rate} "
                "writes/s; 3 s in, docker kill of the primary, "
                + ("the write VIP's holder; the cluster fails over by itself (no playbook), "
                   f"then 15 s more writes, {DB_KILLS} times, the killed member started again "
                   "as a replica between kills."
                   if lab.db_write_vip else
                   "the db_primary host, then playbooks/db_failover.yml (unplanned, the e2e "
                   "failover test's variables), then 10 s more writes.")
                + " Afterwards every acknowledged (2xx) note is looked up with SELECT on the "
                "new primary.", fail_over_db, post_tag=tag,
                after_s=15.0 if lab.db_write_vip else 10.0),
    ]  # fmt: skip
    assert [f.key for f in failures] == list(FAILURE_KEYS)
    report["probe_rate"] = rate
    kills: list[dict[str, Any]] = []
    started: list[tuple[str, float]] = []  # each timeline's name and first mark
    for failure in failures:
        if failure.key not in keys:
            continue
        if failure.key in CLUSTER_ONLY and not lab.db_write_vip:
            report["not_measured"].append(f"{failure.name} (the database tier is not clustered)")
            continue
        rounds = DB_KILLS if failure.key == "db-failover" and lab.db_write_vip else 1
        for turn in range(1, rounds + 1):
            name = failure.name if rounds == 1 else f"{failure.name} ({turn} of {rounds})"
            log(f"failure timeline: {name}")
            if failure.post_tag is None:
                samples, marks = probe_during(f"https://{lab.vip}/", rate, failure.inject)
            else:
                samples, marks = probe_during(
                    f"https://{lab.vip}/api/notes",
                    write_rate,
                    failure.inject,
                    post_tag=f"{failure.post_tag}-{turn}",
                    after_s=failure.after_s,
                )
            started.append((name, marks[0][0] if marks else time.time()))
            plot = f"timeline-{failure.key}" + (f"-{turn}" if rounds > 1 else "") + ".png"
            plot_timeline(outdir / plot, name, samples, marks)
            report["failures"][name] = {
                "description": failure.description,
                "summary": timeline_summary(samples),
                "marks": marks,
                "plot": plot,
            }
            (outdir / f"{Path(plot).stem}.jsonl").write_text(
                "".join(json.dumps(asdict(s)) + "\n" for s in samples)
            )
            if failure.key in CLUSTER_ONLY and failure.post_tag:
                outcome = writes_outcome(lab, samples, marks, f"{failure.post_tag}-{turn}")
                report["failures"][name]["writes"] = outcome
                log(f"{name}: {outcome}")
            if failure.key != "db-failover":
                continue
            kills.append(db_failover_outcome(lab, samples, marks, f"{failure.post_tag}-{turn}"))
            report["lab_state"] = kills[-1]["lab_state"]
            if killed:
                sh("docker", "start", killed[-1].container)
                wait_replicating(killed[-1])
                report["lab_state"] = (
                    f"the cluster's primary is {kills[-1]['new_primary']}, and every database "
                    "host runs again (the killed ones as replicas)"
                )
    if kills:
        report["db_failover"] = {**kills_summary(kills), "lab_state": report["lab_state"]}
    if started:
        attribute_notifications(lab, report, started)


def attribute_notifications(
    lab: labtool.Lab, report: dict[str, Any], started: Sequence[tuple[str, float]]
) -> None:
    """Each timeline's first critical mail in the lab's alert mailbox."""
    monitoring = lab.first_in("monitoring")
    if monitoring is None:
        report["not_measured"].append("time to notify (the lab has no monitoring host)")
        return
    time.sleep(max(0.0, started[-1][1] + NOTIFY_WAIT_S - time.time()))
    notes = read_mailbox(monitoring.container)
    ends = [since for _, since in started[1:]] + [time.time()]
    for (name, since), until in zip(started, ends, strict=True):
        report["failures"][name]["notified"] = first_critical(notes, since, until)


def first_critical(
    notes: Sequence[Notification], since: float, until: float
) -> dict[str, Any] | None:
    """The first mail delivered in [since, until) with a firing critical alert."""
    for note in notes:
        firing = note.critical_firing
        if firing and int(since) <= note.delivered < until:
            return {
                "after_s": note.delivered - int(since),
                "alerts": [f"{a.name} on {a.instance}" for a in firing],
            }
    return None


def kills_summary(kills: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The last kill's outcome, plus every kill's and the median and worst
    seconds from a kill until writes succeed for good."""
    times = sorted(k["back_after_kill_s"] for k in kills)
    return {
        **kills[-1],
        "kills": list(kills),
        "median_back_after_kill_s": statistics.median(times),
        "worst_back_after_kill_s": times[-1],
        "lost_in_all_kills": sum(k["lost"] for k in kills),
    }


def db_failover_outcome(
    lab: labtool.Lab,
    samples: Sequence[ProbeSample],
    marks: Sequence[tuple[float, str]],
    tag: str,
) -> dict[str, Any]:
    """Read the acknowledged notes back on the promoted replica; say where the lab is."""
    old = lab.first_in("db_primary")
    new = new_primary(lab)
    stored = stored_notes(new, tag)
    lost = lost_writes(samples, stored)
    outage = write_outage(samples, marks[0][0])
    back_after_kill = writes_back_after_kill(samples, marks[0][0])
    note = LAB_ON_REPLICA.format(new=new.name, old=old.name if old else "the old primary")
    acked = sum(1 for s in samples if s.acknowledged)
    log(
        f"db failover: {acked} acknowledged writes, {len(lost)} missing on {new.name}; "
        f"writes succeed again {fmt(outage['back_s'])} s after the first failed one"
    )
    return {
        "new_primary": new.name,
        "attempted": len(samples),
        "acknowledged": acked,
        "failed": len(samples) - acked,
        "lost": len(lost),
        "lost_examples": lost[:10],
        "stored_rows_of_this_run": len(stored),
        "back_after_kill_s": back_after_kill,
        **outage,
        "lab_state": note,
    }


def probe_during(
    url: str,
    rate: float,
    inject: Callable[[list[tuple[float, str]]], None],
    post_tag: str | None = None,
    after_s: float = 5.0,
) -> tuple[list[ProbeSample], list[tuple[float, str]]]:
    """Run the probe, inject the failure 3 s in, stop the probe `after_s` after it."""
    pidfile = "/tmp/bench_probe.pid"
    post = f"--post {post_tag} " if post_tag else ""
    command = f"echo $$ > {pidfile}; exec python3 /root/bench_probe.py {post}{url} {rate} 600"
    proc = subprocess.Popen(
        ["docker", "exec", CLIENT, "sh", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    marks: list[tuple[float, str]] = []
    try:
        time.sleep(3)
        inject(marks)
        time.sleep(after_s)
    finally:
        pid = dexec(CLIENT, "cat", pidfile, check=False).strip()
        if pid.isdigit():
            dexec(CLIENT, "kill", pid, check=False)
        out, _ = proc.communicate(timeout=30)
    return parse_probe(out), marks
