"""The local platform: every service is a child process on 127.0.0.1, ports chosen at start."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
import requests
import structlog

from harness import net
from harness.errors import HarnessError, TargetStartError
from harness.platforms import cgroups, postgres
from harness.platforms.base import InstanceStatus, StackStatus, Variant
from harness.platforms.processes import (
    LOOPBACK,
    ProcessRecord,
    free_port,
    group_members,
    http_ok,
    is_alive,
    is_ours,
    port_listening,
    resident_bytes,
    signal_ours,
    spawn,
    stop,
    tracking,
    wait_until,
)
from harness.stack import Link, Stack, load_stack

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT_S = 30.0
TOXIPROXY_SERVICE = "toxiproxy"


@dataclass
class UpOptions:
    """Target options an experiment sets beyond service settings."""

    services: list[str] = field(default_factory=list)
    seed: int = 42
    data_rows: int = 10_000
    instances: dict[str, int] = field(default_factory=dict)


# Balancing rule of the edge: round robin, or the session cookie, so a user stays on one
# instance while it lives. Consistent hashing moves only a lost instance's users.
MIB = 1024 * 1024
# Sticky routing hashes a client id cookie (`uid`) that the client has before it logs in, so its
# login and its later requests reach the same instance. Open-source nginx has no sticky cookie.
BALANCE = {"round_robin": "", "sticky": "hash $cookie_uid consistent;"}


def proxy_name(link: str) -> str:
    """Return the fault proxy's name for a link: `api->payments` becomes `api_to_payments`."""
    client, server = Link.ends(link)
    return f"{client}_to_{server}"


def _all_targets_scraped(base: str, expected: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            response = net.request("GET", f"{base}/api/v1/targets", timeout=1.0)
            active = response.json()["data"]["activeTargets"]
        except (requests.RequestException, ValueError, KeyError):
            return False
        return len(active) >= expected and all(t.get("health") == "up" for t in active)

    return check


class LocalPlatform:
    """Runs the target as child processes and records them in the state directory."""

    name = "local"

    def __init__(
        self, state_dir: Path, stack: Stack | None = None, options: UpOptions | None = None
    ) -> None:
        self.state_dir = state_dir
        self.stack = stack or load_stack()
        self.options = options or UpOptions()
        # Cgroup path -> instance name, for every memory-limited instance this object started.
        self._cgroups: dict[str, str] = {}
        # Names every cgroup of this state folder, and no other folder's.
        self._cgroup_key = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
        self.logs = state_dir / "logs"
        self.state_file = state_dir / "state.json"

    # State -----------------------------------------------------------------------------------

    def _load(self) -> dict[str, object]:
        if not self.state_file.exists():
            return {"records": [], "links": {}, "ports": {}}
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TargetStartError(
                f"{self.state_file}: unreadable state ({exc}); if no harness process runs "
                "on this folder, stop leftovers by hand and delete the file"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("records", []), list):
            raise TargetStartError(
                f"{self.state_file}: not a harness state file; if no harness process runs on "
                "this folder, stop leftovers by hand and delete the file"
            )
        return data

    def _save(self, state: dict[str, object]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_file)

    def records(self) -> list[ProcessRecord]:
        """Return the processes recorded in the state directory."""
        raw = self._load().get("records", [])
        assert isinstance(raw, list)
        records: list[ProcessRecord] = []
        for item in raw:
            try:
                records.append(ProcessRecord(**item))
            except TypeError:
                log.warning("state.record_skipped", record=str(item)[:200])
        return records

    def _add_record(self, state: dict[str, object], record: ProcessRecord) -> None:
        records = state.setdefault("records", [])
        assert isinstance(records, list)
        records.append(record.to_json())
        self._save(state)

    def _ports(self) -> dict[str, int]:
        ports = self._load().get("ports", {})
        if not isinstance(ports, dict):
            return {}
        return {str(k): int(v) for k, v in ports.items() if isinstance(v, int)}

    # Lifecycle -------------------------------------------------------------------------------

    def up(self, variant: Variant, scale: dict[str, int] | None = None) -> None:
        """Start every service of the stack with the arm's settings and wait for health."""
        self.options.instances = dict(scale or {})
        leftovers = [r for r in self.records() if is_ours(r)]
        if leftovers:
            names = ", ".join(r.name for r in leftovers)
            raise TargetStartError(
                f"a local stack is already running ({names}); run `harness down` first"
            )
        for sub in ("logs", "run", "tmp"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        state: dict[str, object] = {"records": [], "links": {}, "ports": {}, "variant": variant}
        self._save(state)
        try:
            with tracking(lambda record: self._add_record(state, record)):
                self._start_all(state, variant)
        except BaseException:
            self.down()
            raise

    def _start_all(self, state: dict[str, object], variant: Variant) -> None:
        ports = state["ports"]
        links = state["links"]
        assert isinstance(ports, dict) and isinstance(links, dict)

        ports["toxiproxy"] = free_port()
        self._save(state)
        self._start_toxiproxy(ports["toxiproxy"])

        running = self.wanted_services()
        state["services"] = running
        for service_name in running:
            service = self.stack.services[service_name]
            env_links = self._links_into(service_name, ports, links, state, running)
            if service.kind == "asgi":
                for index in range(self.options.instances.get(service_name, service.instances)):
                    name = f"{service_name}-{index + 1}"
                    port = free_port()
                    ports[name] = port
                    self._start_asgi(service_name, name, port, variant, env_links)
                self._wait_instances(state, service_name)
            elif service.kind == "redis":
                ports[service_name] = free_port()
                self._start_redis(service_name, ports[service_name])
            elif service.kind == "postgres":
                ports[service_name] = free_port()
                self._start_postgres(service_name, ports, variant)
            elif service.kind == "exporter":
                ports[service_name] = free_port()
                self._start_exporter(service_name, ports, running)
            elif service.kind == "nginx":
                ports[service_name] = free_port()
                self._start_nginx(service_name, ports, variant)
            elif service.kind == "prometheus":
                ports[service_name] = free_port()
                self._start_prometheus(service_name, ports)
            self._save(state)
            self._create_link_proxies(service_name, ports, links, state, running)
        self._save(state)
        log.info("stack.up", services=running, ports=ports)

    def _pg_root(self) -> Path:
        root = getattr(self, "_pg_root_path", None)
        if root is None:
            root = postgres.data_root(self.state_dir)
            self._pg_root_path: Path = root
        return root

    def wanted_services(self) -> list[str]:
        """Return the services to start for the current options."""
        return self.stack.running_services(self.options.services)

    def down(self) -> None:
        """Stop every recorded process that is still ours, newest first."""
        self._stopped = self.records()
        for record in reversed(self._stopped):
            stop(record)
            log.info("instance.stopped", service=record.service, instance=record.name)
        # Cgroups are found by name, so a later process (a reconcile after a killed run) removes
        # the ones a killed runner left as well.
        for path in cgroups.find(self.memory_cgroup_prefix()):
            cgroups.remove(path)
        self._cgroups.clear()
        if self.state_file.exists():
            self.state_file.unlink()

    def audit(self) -> list[str]:
        """Return what the last down left behind: live processes or ports still listening."""
        leaks: list[str] = []
        for record in getattr(self, "_stopped", []):
            if is_alive(record):
                leaks.append(f"process {record.name} (pid {record.pid}) or one of its "
                             "children still running")  # fmt: skip
            elif record.port is not None and port_listening(record.port):
                leaks.append(f"port {record.port} of {record.name} still listening")
        for record in self.records():
            if is_ours(record):
                leaks.append(f"process {record.name} (pid {record.pid}) still running")
        return leaks

    def toxics_left(self) -> list[str]:
        """Return every toxic on any proxy of the fault proxy, as `proxy/toxic`."""
        response = net.request("GET", f"{self.toxiproxy()}/proxies")
        left: list[str] = []
        for name, proxy in response.json().items():
            left.extend(f"{name}/{toxic['name']}" for toxic in proxy.get("toxics", []))
        return left

    # Starting each kind ----------------------------------------------------------------------

    def _start_toxiproxy(self, port: int) -> ProcessRecord:
        go_server = shutil.which("toxiproxy-server")
        if go_server:
            argv = [go_server, "-host", LOOPBACK, "-port", str(port)]
        else:
            argv = [sys.executable, "-m", "harness.proxy", "--host", LOOPBACK, "--port", str(port)]
        record = spawn(
            TOXIPROXY_SERVICE, TOXIPROXY_SERVICE, argv, self.logs / "toxiproxy.log", port=port
        )
        wait_until(
            record, http_ok(f"http://{LOOPBACK}:{port}/version"), START_TIMEOUT_S, "GET /version"
        )
        return record

    def _links_into(
        self,
        client: str,
        ports: dict[str, int],
        links: dict[str, object],
        state: dict[str, object],
        running: list[str],
    ) -> dict[str, str]:
        """Reserve a listen port for each link leaving a service and return its environment."""
        env: dict[str, str] = {}
        for link_name, link in self.stack.links.items():
            link_client, link_server = Link.ends(link_name)
            if link_client != client or link_server not in running:
                continue
            # The server side may have created the link's proxy already; reuse its port.
            listen = ports.get(f"link:{link_name}") or free_port()
            ports[f"link:{link_name}"] = listen
            if link.env:
                env[link.env] = link.address(LOOPBACK, listen)
        self._save(state)
        return env

    def _create_link_proxies(
        self,
        server: str,
        ports: dict[str, int],
        links: dict[str, object],
        state: dict[str, object],
        running: list[str],
    ) -> None:
        """Create the proxies of every link whose server side is this service."""
        for link_name in self.stack.links:
            link_client, link_server = Link.ends(link_name)
            if link_server != server or link_client not in running:
                continue
            listen = ports.get(f"link:{link_name}") or free_port()
            ports[f"link:{link_name}"] = listen
            upstream = ports.get(f"{server}-1") or ports[server]
            body = {
                "name": proxy_name(link_name),
                "listen": f"{LOOPBACK}:{listen}",
                "upstream": f"{LOOPBACK}:{upstream}",
                "enabled": True,
            }
            response = net.request("POST", f"{self.toxiproxy()}/proxies", json=body)
            if response.status_code != 201:
                raise TargetStartError(
                    f"link {link_name}: fault proxy rejected the proxy: "
                    f"{response.status_code} {response.text.strip()}"
                )
            links[link_name] = {"proxy": proxy_name(link_name), "listen": listen}
            self._save(state)
            log.info("link.created", link=link_name, listen=listen, upstream=upstream)

    def _start_asgi(
        self, service: str, name: str, port: int, variant: Variant, env_links: dict[str, str]
    ) -> ProcessRecord:
        spec = self.stack.services[service]
        env = dict(os.environ)
        env.pop("HTTP_PROXY", None)
        env.pop("http_proxy", None)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["HARNESS_INSTANCE"] = name
        env.update(env_links)
        for key, setting in spec.settings.items():
            value = variant.get(service, {}).get(key, setting.default)
            env[setting.env] = setting.to_env(value)
        assert spec.app is not None
        limit_mb = float(variant.get(service, {}).get("memory_limit_mb", 0) or 0)
        argv = [
            sys.executable, "-m", "uvicorn", spec.app,
            "--host", LOOPBACK, "--port", str(port),
            "--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "1",
            # Longer than any fault window, so an idle connection held by a toxic stays open.
            "--timeout-keep-alive", "120",
        ]  # fmt: skip
        record = spawn(service, name, argv, self.logs / f"{name}.log", env=env, port=port,
                       cwd=REPO_ROOT)  # fmt: skip
        if limit_mb > 0:
            path = cgroups.limit_memory(f"{self._cgroup_key}-{name}-{record.pid}", record.pid,
                                        int(limit_mb * 1024 * 1024))  # fmt: skip
            self._cgroups[str(path)] = name
            log.info("instance.memory_limited", instance=name, limit_mb=limit_mb, cgroup=str(path))
        return record

    def _wait_instances(self, state: dict[str, object], service: str) -> None:
        for record in self.records():
            if record.service == service:
                url = f"http://{LOOPBACK}:{record.port}/health"
                wait_until(record, http_ok(url), START_TIMEOUT_S, "GET /health")

    def _start_redis(self, service: str, port: int) -> ProcessRecord:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [binary, "--bind", LOOPBACK, "--port", str(port), "--save", "", "--appendonly",
                "no", "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning",
                "--dir", str(self.state_dir / "run")]  # fmt: skip
        record = spawn(service, f"{service}-1", argv, self.logs / f"{service}.log", port=port)

        def pings() -> bool:
            try:
                return bool(redis.Redis(host=LOOPBACK, port=port, socket_timeout=1).ping())
            except redis.RedisError:
                return False

        wait_until(record, pings, START_TIMEOUT_S, "PING")
        return record

    def _start_postgres(
        self, service: str, ports: dict[str, int], variant: Variant
    ) -> ProcessRecord:
        spec = self.stack.services[service]
        data = self._pg_root() / "data" / service
        name = f"{service}-1"
        if spec.role == "replica":
            assert spec.primary is not None
            link = ports[f"link:{service}->{spec.primary}"]
            postgres.basebackup(data, link, self.logs)
            postgres.point_replica(data, link)
        else:
            cached = postgres.cached_primary(
                self._pg_root() / "cache", self.options.seed, self.options.data_rows, self.logs
            )
            postgres.copy_data(cached, data)
        record = postgres.start(data, ports[service], name, self.logs / f"{name}.log")
        settings = variant.get(service, {})
        if settings.get("index"):
            postgres.execute(ports[service], postgres.INDEX_SQL)
        return record

    def _start_exporter(
        self, service: str, ports: dict[str, int], running: list[str]
    ) -> ProcessRecord:
        argv = [sys.executable, "-m", "harness.observe.exporter", "--port", str(ports[service])]
        for name in running:
            kind = self.stack.services[name].kind
            if kind == "postgres":
                argv += ["--postgres", f"{name}={ports[name]}"]
            elif kind == "redis":
                argv += ["--redis", f"{name}={ports[name]}"]
        record = spawn(service, f"{service}-1", argv, self.logs / f"{service}.log",
                       port=ports[service], cwd=REPO_ROOT)  # fmt: skip
        wait_until(record, http_ok(f"http://{LOOPBACK}:{ports[service]}/metrics"),
                   START_TIMEOUT_S, "GET /metrics")  # fmt: skip
        return record

    def _write_nginx_conf(
        self, service: str, ports: dict[str, int], variant: Variant, leaving: frozenset[str]
    ) -> Path:
        """Write the edge's configuration with every running upstream instance but `leaving`."""
        spec = self.stack.services[service]
        upstream = spec.upstream or "api"
        servers = "\n".join(
            f"        server {LOOPBACK}:{r.port} max_fails=1 fail_timeout=2s;"
            for r in self.records()
            if r.service == upstream and r.name not in leaving and is_ours(r)
        )
        # A link from the edge has a listen port only while its server runs. nginx passes
        # such a response on unbuffered, so a slow client slows the service behind the link
        # rather than filling nginx's buffers and temporary files.
        locations: list[str] = []
        for link_name in self.stack.links:
            client, server = Link.ends(link_name)
            listen = ports.get(f"link:{link_name}")
            if client != service or listen is None:
                continue
            locations.append(
                f"        location /{server}/ {{\n"
                f"            proxy_pass http://{LOOPBACK}:{listen};\n"
                "            proxy_http_version 1.1;\n"
                "            proxy_buffering off;\n"
                "            proxy_read_timeout 300s;\n"
                "            proxy_send_timeout 300s;\n"
                "        }"
            )
        run = self.state_dir / "run"
        tmp = self.state_dir / "tmp"
        template = (REPO_ROOT / "targets" / "edge" / "nginx.conf.template").read_text()
        conf = template.format(
            pid=run / "nginx.pid",
            error_log=self.logs / f"{service}.log",
            tmp=tmp,
            upstream=upstream,
            servers=servers,
            balance=BALANCE[str(variant.get(service, {}).get("balance", "round_robin"))],
            listen=f"{LOOPBACK}:{ports[service]}",
            locations="\n".join(locations),
        )
        conf_path = run / "nginx.conf"
        conf_path.write_text(conf)
        return conf_path

    def _start_nginx(self, service: str, ports: dict[str, int], variant: Variant) -> ProcessRecord:
        conf_path = self._write_nginx_conf(service, ports, variant, frozenset())
        run = self.state_dir / "run"
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [nginx, "-e", str(self.logs / f"{service}.log"), "-p", str(run), "-c",
                str(conf_path)]  # fmt: skip
        record = spawn(service, f"{service}-1", argv, self.logs / f"{service}.out.log",
                       port=ports[service])  # fmt: skip
        wait_until(record, http_ok(f"http://{LOOPBACK}:{ports[service]}/health"),
                   START_TIMEOUT_S, "GET /health through the edge")  # fmt: skip
        return record

    def _scrape_jobs(self) -> dict[str, list[str]]:
        """Return the address of every running instance Prometheus scrapes, by service."""
        jobs: dict[str, list[str]] = {}
        for record in self.records():
            spec = self.stack.services.get(record.service)
            scraped = record.service == TOXIPROXY_SERVICE or (
                spec is not None and spec.kind in ("asgi", "exporter")
            )
            if record.port is None or not scraped or not is_ours(record):
                continue
            jobs.setdefault(record.service, []).append(f"{LOOPBACK}:{record.port}")
        return jobs

    def _write_scrape_targets(self, jobs: dict[str, list[str]]) -> None:
        """Write one file of targets per service; Prometheus rereads them when they change."""
        folder = self.state_dir / "run" / "scrape"
        folder.mkdir(parents=True, exist_ok=True)
        for job, targets in jobs.items():
            path = folder / f"{job}.json"
            partial = path.with_suffix(".tmp")
            partial.write_text(json.dumps([{"targets": targets, "labels": {"service": job}}]))
            # A rename is atomic, so Prometheus never reads half a file.
            partial.replace(path)

    def _start_prometheus(self, service: str, ports: dict[str, int]) -> ProcessRecord:
        jobs = self._scrape_jobs()
        self._write_scrape_targets(jobs)
        folder = self.state_dir / "run" / "scrape"
        scrape = [
            {
                "job_name": job,
                "scrape_interval": "1s",
                "file_sd_configs": [{"files": [str(folder / f"{job}.json")],
                                     "refresh_interval": "1s"}],
            }
            for job in jobs
        ]  # fmt: skip
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": scrape}  # fmt: skip
        run = self.state_dir / "run"
        config_path = run / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2))
        data = self.state_dir / "prometheus-data"
        shutil.rmtree(data, ignore_errors=True)
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        argv = [
            binary, f"--config.file={config_path}", f"--storage.tsdb.path={data}",
            f"--web.listen-address={LOOPBACK}:{ports[service]}",
            "--storage.tsdb.retention.time=2h", "--log.level=warn",
        ]  # fmt: skip
        record = spawn(service, f"{service}-1", argv, self.logs / f"{service}.log",
                       port=ports[service])  # fmt: skip
        base = f"http://{LOOPBACK}:{ports[service]}"
        wait_until(record, http_ok(f"{base}/-/ready"), START_TIMEOUT_S, "GET /-/ready")
        # Prometheus applies new targets up to 5 s after start; probes need the first scrape.
        wait_until(record, _all_targets_scraped(base, sum(len(t) for t in jobs.values())),
                   START_TIMEOUT_S, "a first scrape of every target")  # fmt: skip
        return record

    # Queries and actions ---------------------------------------------------------------------

    def status(self) -> StackStatus:
        """Return every recorded instance that is still ours, with a health probe."""
        status = StackStatus()
        for record in self.records():
            if not is_ours(record):
                if group_members(record):
                    status.instances.append(InstanceStatus(
                        record.service, record.name, None, record.port, False,
                        "its process is gone but children of it still run",
                    ))  # fmt: skip
                continue
            healthy = self._healthy(record)
            status.instances.append(
                InstanceStatus(record.service, record.name, record.pid, record.port, healthy)
            )
        return status

    def _healthy(self, record: ProcessRecord) -> bool:
        if record.port is None:
            return False
        spec = self.stack.services.get(record.service)
        kind = spec.kind if spec is not None else record.service
        if kind == "redis":
            try:
                return bool(redis.Redis(host=LOOPBACK, port=record.port, socket_timeout=1).ping())
            except redis.RedisError:
                return False
        if kind == "postgres":
            try:
                postgres.execute(record.port, "SELECT 1")
            except psycopg.Error:
                return False
            return True
        path = {"prometheus": "/-/ready", "toxiproxy": "/version", "exporter": "/metrics"}.get(
            kind, "/health"
        )
        return http_ok(f"http://{LOOPBACK}:{record.port}{path}")()

    def instances(self, service: str) -> list[str]:
        """Return the instance names of a service."""
        return [r.name for r in self.records() if r.service == service and is_ours(r)]

    def _record(self, instance: str) -> ProcessRecord:
        for record in self.records():
            if record.name == instance and is_ours(record):
                return record
        raise HarnessError(f"instance {instance!r} is not running on the local platform")

    def kill(self, instance: str) -> None:
        """Kill one instance with SIGKILL."""
        signal_ours(self._record(instance), signal.SIGKILL)

    def pause(self, instance: str) -> None:
        """Freeze one instance with SIGSTOP."""
        signal_ours(self._record(instance), signal.SIGSTOP)

    def resume(self, instance: str) -> None:
        """Thaw one instance with SIGCONT."""
        signal_ours(self._record(instance), signal.SIGCONT)

    def scale(self, service: str, count: int) -> None:
        """Run `count` instances of an api-like service and reload the edge with them.

        New instances pass their health check before the edge sends them traffic. Leaving
        instances are taken out of the edge first, so no request goes to a stopped one.
        nginx reloads on SIGHUP with new workers while the old ones finish their requests.
        """
        spec = self.stack.services.get(service)
        if spec is None or spec.kind != "asgi":
            raise HarnessError(f"service {service!r} does not scale; the api and payments do")
        if not 1 <= count <= 10:
            raise HarnessError(f"scale {service}: invalid count {count}; expected 1 to 10")
        state = self._load()
        ports, links = state["ports"], state["links"]
        variant = state.get("variant", {})
        assert isinstance(ports, dict)
        assert isinstance(links, dict)
        assert isinstance(variant, dict)
        current = sorted(
            (r for r in self.records() if r.service == service and is_ours(r)),
            key=lambda r: int(r.name.rpartition("-")[2]),
        )
        with tracking(lambda record: self._add_record(state, record)):
            env = self._links_into(service, ports, links, state, self.wanted_services())
            taken = {r.name for r in current}
            index = 0
            started: list[ProcessRecord] = []
            while len(taken) < count:
                index += 1
                name = f"{service}-{index}"
                if name in taken:
                    continue
                ports[name] = free_port()
                started.append(self._start_asgi(service, name, ports[name], variant, env))
                taken.add(name)
            # The new instances start side by side, and each passes its health check before the edge
            # routes to it.
            for record in started:
                wait_until(record, http_ok(f"http://{LOOPBACK}:{record.port}/health"),
                           START_TIMEOUT_S, "GET /health")  # fmt: skip
        leaving = current[count:] if count < len(current) else []
        self._reload_edge(ports, variant, frozenset(r.name for r in leaving))
        for record in leaving:
            stop(record)
        raw = state.get("records", [])
        assert isinstance(raw, list)
        gone = {r.name for r in leaving}
        state["records"] = [r for r in raw if r.get("name") not in gone]
        self._save(state)
        self._write_scrape_targets(self._scrape_jobs())
        log.info("service.scaled", service=service, count=count)

    def _reload_edge(
        self, ports: dict[str, int], variant: Variant, leaving: frozenset[str]
    ) -> None:
        for record in self.records():
            spec = self.stack.services.get(record.service)
            if spec is None or spec.kind != "nginx" or not is_ours(record):
                continue
            self._write_nginx_conf(record.service, ports, variant, leaving)
            signal_ours(record, signal.SIGHUP)
            # nginx handles SIGHUP asynchronously; give the new workers a moment to start.
            time.sleep(0.5)

    def deploy(self, service: str, version: str) -> None:
        """Replace the instances of a service with another version."""
        # TODO: versioned deploys of the api are not built yet.
        raise HarnessError("deploy is not available on the local platform yet")

    def endpoint(self, service: str) -> str:
        """Return the base URL of a service's first instance, or of the edge."""
        ports = self._ports()
        port = ports.get(service) or ports.get(f"{service}-1")
        if port is None:
            raise HarnessError(f"service {service!r} is not running; run `harness up` first")
        return f"http://{LOOPBACK}:{port}"

    def instance_memory(self, instance: str) -> tuple[int, int] | None:
        """Return the peak memory in bytes and the OOM kills of a memory-limited instance.

        Both add up over the instance's restarts: the peak is the highest of any of its
        processes, the kills their sum.
        """
        paths = [Path(p) for p, name in self._cgroups.items() if name == instance]
        if not paths:
            return None
        return max(cgroups.peak_bytes(p) for p in paths), sum(cgroups.oom_kills(p) for p in paths)

    def memory_cgroup_prefix(self) -> str:
        """Return the name prefix of this state folder's memory cgroups."""
        return f"{self._cgroup_key}-"

    def service_figures(self, service: str) -> dict[str, float]:
        """Return the running instances, their summed RSS and the memory figures of a service.

        `memory_peak_mb` and `oom_kills` come from the cgroups of memory-limited instances and
        are left out without a limit; `rss_mb` sums the resident memory of the running processes.
        """
        running = [r for r in self.records() if r.service == service and is_ours(r)]
        rss = sum(resident_bytes(r.pid) for r in running)
        paths = [Path(p) for p, name in self._cgroups.items()
                 if name.rpartition("-")[0] == service]  # fmt: skip
        figures = {"instances": float(len(running)), "rss_mb": rss / MIB}
        if paths:
            # Without a memory limit there is no cgroup to read: no figure rather than a 0
            # that would pass `oom_kills == 0` without measuring anything.
            figures["memory_peak_mb"] = max(cgroups.peak_bytes(p) for p in paths) / MIB
            figures["oom_kills"] = float(sum(cgroups.oom_kills(p) for p in paths))
        return figures

    def instance_process(self, instance: str) -> tuple[int, int] | None:
        """Return the pid and start time of an instance's process, if it runs."""
        for record in self.records():
            if record.name == instance and is_ours(record):
                return record.pid, record.start_time
        return None

    def instance_port(self, instance: str) -> int | None:
        """Return the port an instance listens on, if it runs."""
        for record in self.records():
            if record.name == instance and is_ours(record):
                return record.port
        return None

    def restart(self, instance: str) -> None:
        """Start an instance again on its port, with the arm's settings and its data folder."""
        state = self._load()
        records = [r for r in self.records() if r.name == instance]
        if not records:
            raise HarnessError(f"instance {instance!r} was never started on the local platform")
        old = records[-1]
        stop(old)
        raw = state.get("records", [])
        assert isinstance(raw, list)
        state["records"] = [r for r in raw if r.get("name") != instance]
        self._save(state)
        with tracking(lambda record: self._add_record(state, record)):
            record = self._restart(old, instance, state)
        log.info("instance.restarted", instance=instance, pid=record.pid)

    def _restart(
        self, old: ProcessRecord, instance: str, state: dict[str, object]
    ) -> ProcessRecord:
        variant = state.get("variant", {})
        assert isinstance(variant, dict)
        service = self.stack.services[old.service]
        assert old.port is not None
        if service.kind == "asgi":
            ports = state["ports"]
            links = state["links"]
            assert isinstance(ports, dict) and isinstance(links, dict)
            env = self._links_into(old.service, ports, links, state, self.wanted_services())
            record = self._start_asgi(old.service, instance, old.port, variant, env)
            wait_until(record, http_ok(f"http://{LOOPBACK}:{old.port}/health"), START_TIMEOUT_S,
                       "GET /health")  # fmt: skip
        elif service.kind == "postgres":
            data = self._pg_root() / "data" / old.service
            record = postgres.start(data, old.port, instance, self.logs / f"{instance}.log")
        elif service.kind == "redis":
            record = self._start_redis(old.service, old.port)
        else:
            raise HarnessError(f"instance {instance!r} of kind {service.kind} cannot restart")
        return record

    def toxiproxy_process(self) -> tuple[int, int] | None:
        """Return the pid and start time of the fault proxy process."""
        for record in self.records():
            if record.service == TOXIPROXY_SERVICE and is_ours(record):
                return record.pid, record.start_time
        return None

    def toxiproxy(self) -> str:
        """Return the base URL of the fault proxy API."""
        return self.endpoint(TOXIPROXY_SERVICE)

    def prometheus(self) -> str:
        """Return the base URL of the Prometheus API."""
        return self.endpoint("prometheus")

    def sql(self, service: str, statement: str) -> list[tuple[object, ...]]:
        """Run one SQL statement on a PostgreSQL service, directly (not through a link)."""
        spec = self.stack.services.get(service)
        if spec is None or spec.kind != "postgres":
            raise HarnessError(f"service {service!r} is not a PostgreSQL service")
        port = self._ports().get(service)
        if port is None:
            raise HarnessError(f"service {service!r} is not running")
        return postgres.execute(port, statement)
