"""The stock stack the bench compares with: Debian's haproxy and nginx with
the demo application behind them, configured the way a user would, by hand.
"""

from __future__ import annotations

import threading

from webinfra_testlib import wait_for

from tools import lab as labtool
from tools.bench_run import (
    CLIENT,
    SCENARIO_LABEL,
    BenchError,
    apt_proxy_line,
    dexec,
    lab_gateway,
    log,
    sh,
)
from tools.lab import ROOT

# The stock stack: what a user assembles by hand from Debian's packages, with
# each daemon's packaged configuration plus the few lines needed to connect
# them. Plain HTTP (no TLS anywhere, which only favours the stock side).
STOCK_LB = ("webinfra-bench-stock-lb", "172.31.250.71")


STOCK_WEBS = (("webinfra-bench-stock-web-1", "172.31.250.72"),
              ("webinfra-bench-stock-web-2", "172.31.250.73"))  # fmt: skip


STOCK_NGINX_SITE = """server {
    listen 80 default_server;
    location / {
        proxy_pass http://127.0.0.1:8000;
    }
}
"""


STOCK_HAPROXY_APPEND = """
frontend web
    bind *:80
    default_backend web

backend web
    balance roundrobin
{servers}"""


NO_START = (
    "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d"
)


def stock_container(lab: labtool.Lab, name: str, address: str, packages: str) -> None:
    sh("docker", "rm", "-f", name, check=False)
    sh(
        "docker", "run", "-d", "--name", name, "--hostname", name, "--network", lab.network,
        "--ip", address, "--label", SCENARIO_LABEL, labtool.lab_image(), "sleep", "infinity",
    )  # fmt: skip
    proxy = apt_proxy_line(lab_gateway(lab))
    if proxy:
        dexec(name, "sh", "-c", f"printf '%s' '{proxy}' > /etc/apt/apt.conf.d/01bench-proxy")
    dexec(
        name,
        "sh",
        "-c",
        f"{NO_START} && apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
        f"apt-get install -y -qq {packages} >/dev/null",
    )


def build_stock_stack(lab: labtool.Lab) -> str:
    """Build the stock stack in bench containers; return its URL."""
    app = ROOT / "roles" / "gunicorn_app" / "files" / "webinfra_demo"
    lb, lb_address = STOCK_LB
    log("stock stack: installing haproxy, nginx and gunicorn from Debian (3 containers)")
    installs = [(lb, lb_address, "haproxy")] + [
        (name, address, "nginx gunicorn python3-flask") for name, address in STOCK_WEBS
    ]
    errors: list[BaseException] = []

    def install(name: str, address: str, packages: str) -> None:
        try:
            stock_container(lab, name, address, packages)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=install, args=item) for item in installs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"the stock stack could not be built: {errors[0]}")
    for name, _ in STOCK_WEBS:
        dexec(name, "mkdir", "-p", "/srv/app")
        sh("docker", "cp", str(app), f"{name}:/srv/app/webinfra_demo")
        dexec(name, "sh", "-c", f"cat > /etc/nginx/sites-available/default <<'EOF'\n"
              f"{STOCK_NGINX_SITE}EOF")  # fmt: skip
        dexec(name, "nginx", "-t")
        dexec(name, "nginx")
        # gunicorn's defaults: one sync worker on 127.0.0.1:8000.
        dexec(name, "sh", "-c", f"cd /srv/app && WEBINFRA_HOSTNAME={name} gunicorn --daemon "
              "webinfra_demo.wsgi:application")  # fmt: skip
    servers = "".join(
        f"    server web{i} {address}:80 check\n" for i, (_, address) in enumerate(STOCK_WEBS)
    )
    dexec(lb, "sh", "-c", "cat >> /etc/haproxy/haproxy.cfg <<'EOF'\n"
          f"{STOCK_HAPROXY_APPEND.format(servers=servers)}EOF")  # fmt: skip
    dexec(lb, "haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg")
    dexec(lb, "mkdir", "-p", "/run/haproxy")
    dexec(lb, "haproxy", "-D", "-f", "/etc/haproxy/haproxy.cfg")
    url = f"http://{lb_address}/"
    wait_for(
        lambda: dexec(
            CLIENT, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url, check=False
        ),
        accept=lambda code: code == "200",
        timeout=60,
    )
    return url
