"""Checks of the deployment kit (deploy/) and of docs/operations.md, with the tools that can check them here.

- Every YAML file under deploy/ parses (PyYAML; several documents in a file allowed).
- The Kubernetes manifests: two replicas, probes on /health/live and /health/ready, non-root with a
  read-only root file system, a PodDisruptionBudget that keeps one, a CloudNativePG Cluster of three
  instances with synchronous replication whose generated secret gives MUSTER_DATABASE_URL, and a
  ConfigMap generator that lists every file of playbooks/.
- The Prometheus rules load with `promtool check rules`, pass their unit tests (`promtool test rules`),
  and name only metrics that Sources/MusterHTTP/Metrics.swift makes.
- The systemd unit passes `systemd-analyze verify`. It starts /usr/local/bin/muster, which need not
  exist here: the check runs on a copy of the unit whose ExecStart names a stub script in a temporary
  folder (verify refuses a unit whose program is missing).
- compose.yaml: its services, health checks, secrets and proxy address agree with each other and with
  compose/muster.yaml; `docker compose config` also checks it when a Compose plugin is installed (it is
  not a Debian package of this release, so CI does not require it: the check skips without it).
- The Dockerfile: two stages from the official Swift images, a non-root user, a HEALTHCHECK on
  /health/ready, the resource bundles copied, every folder Package.swift needs copied. `hadolint` also
  checks it when it is installed; Debian packages no hadolint, so that check skips without it.
- deploy/muster-env and deploy/make-secrets do what they say; Muster accepts the keys make-secrets makes.
- The configuration files of the kit load in Muster (strictly: an unknown key is an error).
- Every `muster …` command and option docs/operations.md shows exists (`--help`).

promtool and systemd-analyze come from scripts/test (promtool unpacked from Debian's prometheus package,
MUSTER_TEST_PROMTOOL). With CI=true a missing tool or muster binary fails these tests; elsewhere they
skip, saying what is missing. MUSTER_TEST_BINARY runs another build than .build/debug/muster.
"""

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
OPERATIONS = REPO / "docs" / "operations.md"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def missing(test: unittest.TestCase, message: str):
    """A tool that is not here: in CI the test fails (never skips); elsewhere it skips with the message."""
    if in_ci():
        raise AssertionError(f"{message} (CI=true: scripts/test provides it)")
    test.skipTest(message)


def tool(name: str, variable: str | None = None) -> str | None:
    if variable and os.environ.get(variable):
        path = os.environ[variable]
        return path if os.access(path, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    cached = REPO / ".build" / "deploy-tools" / name
    return str(cached) if os.access(cached, os.X_OK) else None


def muster_binary() -> str | None:
    path = os.environ.get("MUSTER_TEST_BINARY") or str(REPO / ".build" / "debug" / "muster")
    return path if os.access(path, os.X_OK) else None


def load_all(path: Path) -> list:
    with open(path, encoding="utf-8") as file:
        return [document for document in yaml.safe_load_all(file) if document is not None]


def load(path: Path):
    documents = load_all(path)
    assert len(documents) == 1, f"{path}: expected one YAML document, found {len(documents)}"
    return documents[0]


def muster_env_secrets() -> set:
    """The variables deploy/muster-env reads from NAME_FILE."""
    text = (DEPLOY / "muster-env").read_text(encoding="utf-8")
    return set(re.search(r'^SECRETS="([^"]*)"', text, re.MULTILINE).group(1).split())


def run(arguments: list, **options) -> subprocess.CompletedProcess:
    return subprocess.run(arguments, capture_output=True, text=True, timeout=120, **options)


class YAMLTest(unittest.TestCase):
    def test_every_yaml_file_under_deploy_parses(self):
        files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and "secrets" not in p.parts)
        self.assertGreaterEqual(len(files), 10, files)
        for path in files:
            with self.subTest(path=str(path.relative_to(REPO))):
                self.assertTrue(load_all(path), f"{path} is empty")


class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kustomization = load(KUBERNETES / "kustomization.yaml")
        cls.objects = {}
        for name in cls.kustomization["resources"] + ["secret.example.yaml"]:
            for document in load_all(KUBERNETES / name):
                cls.objects[(document["kind"], document["metadata"]["name"])] = document
        cls.deployment = cls.objects[("Deployment", "muster")]
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        cls.container = next(c for c in cls.pod["containers"] if c["name"] == "muster")

    def test_the_deployment_runs_two_replicas_with_health_probes(self):
        self.assertEqual(self.deployment["spec"]["replicas"], 2)
        self.assertEqual(self.container["livenessProbe"]["httpGet"]["path"], "/health/live")
        self.assertEqual(self.container["readinessProbe"]["httpGet"]["path"], "/health/ready")
        self.assertEqual(self.container["startupProbe"]["httpGet"]["path"], "/health/live")
        strategy = self.deployment["spec"]["strategy"]["rollingUpdate"]
        self.assertEqual(strategy["maxUnavailable"], 0)
        self.assertIn("--host", self.container["args"])

    def test_the_pods_run_unprivileged_on_a_read_only_root(self):
        self.assertTrue(self.pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(self.pod["securityContext"]["runAsUser"], 0)
        for container in self.pod["containers"] + self.pod.get("initContainers", []):
            with self.subTest(container=container["name"]):
                context = container["securityContext"]
                self.assertTrue(context["readOnlyRootFilesystem"])
                self.assertFalse(context["allowPrivilegeEscalation"])
                self.assertEqual(context["capabilities"]["drop"], ["ALL"])
        mounts = {m["mountPath"] for m in self.container["volumeMounts"]}
        # A read-only root: what Muster writes has volumes.
        self.assertTrue({"/var/lib/muster", "/tmp", "/etc/muster/playbooks"} <= mounts, mounts)

    def test_the_service_and_the_budget_select_the_pods(self):
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(self.deployment["spec"]["selector"]["matchLabels"], labels)
        self.assertEqual(self.objects[("Service", "muster")]["spec"]["selector"], labels)
        budget = self.objects[("PodDisruptionBudget", "muster")]
        self.assertEqual(budget["spec"]["minAvailable"], 1)
        self.assertEqual(budget["spec"]["selector"]["matchLabels"], labels)

    def test_the_database_is_a_synchronous_cloudnativepg_cluster_whose_secret_gives_the_url(self):
        clusters = [o for (kind, _), o in self.objects.items() if kind == "Cluster"]
        self.assertEqual(len(clusters), 1)
        cluster = clusters[0]
        self.assertEqual(cluster["apiVersion"], "postgresql.cnpg.io/v1")
        self.assertEqual(cluster["spec"]["instances"], 3)
        self.assertEqual(cluster["spec"]["postgresql"]["synchronous"]["method"], "any")
        self.assertEqual(cluster["spec"]["postgresql"]["synchronous"]["number"], 1)
        self.assertEqual(cluster["spec"]["postgresql"]["parameters"]["wal_recycle"], "off")
        name = cluster["metadata"]["name"]
        env = {e["name"]: e for e in self.container["env"]}
        self.assertEqual(env["MUSTER_DATABASE_URL"]["valueFrom"]["secretKeyRef"], {"name": f"{name}-app", "key": "uri"})
        self.assertEqual(env["PGSSLMODE"]["value"], "verify-full")
        # verify-full needs the operator's CA among the roots Muster trusts (/etc/ssl/certs).
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        self.assertEqual(volumes["database-ca"]["secret"]["secretName"], f"{name}-ca")
        self.assertIn("/etc/ssl/certs", {m["mountPath"] for m in self.container["volumeMounts"]})

    def test_every_secret_the_deployment_reads_is_in_the_template(self):
        template = self.objects[("Secret", "muster-secrets")]["stringData"]
        self.assertNotIn("secret.example.yaml", self.kustomization["resources"])
        for variable in self.container["env"]:
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference and reference["name"] == "muster-secrets":
                with self.subTest(variable=variable["name"]):
                    self.assertIn(reference["key"], template)
        for required in ("MUSTER_MASTER_KEY", "MUSTER_LINK_KEY", "MUSTER_AUDIT_SIGNING_KEY"):
            reference = next(e for e in self.container["env"] if e["name"] == required)["valueFrom"]["secretKeyRef"]
            self.assertFalse(reference.get("optional", False), required)

    def test_the_configmaps_hold_every_playbook_file(self):
        generators = {g["name"]: g for g in self.kustomization["configMapGenerator"]}
        listed = {(KUBERNETES / f).resolve() for f in generators["muster-playbooks"]["files"]}
        shipped = {p.resolve() for p in (REPO / "playbooks").iterdir() if p.suffix in (".yaml", ".yml")}
        self.assertEqual(listed, shipped)
        for name in generators["muster-config"]["files"]:
            self.assertTrue((KUBERNETES / name).is_file(), name)
        mounted = {v["configMap"]["name"] for v in self.pod["volumes"] if "configMap" in v}
        self.assertEqual(mounted, set(generators))


class PrometheusRulesTest(unittest.TestCase):
    RULES = DEPLOY / "prometheus" / "muster-rules.yml"

    def promtool(self) -> str:
        path = tool("promtool", "MUSTER_TEST_PROMTOOL")
        if not path:
            missing(self, "promtool is not installed (Debian's prometheus package has it)")
        return path

    def test_the_rules_load(self):
        result = run([self.promtool(), "check", "rules", str(self.RULES)])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SUCCESS", result.stdout)

    def test_the_rules_pass_their_unit_tests(self):
        result = run([self.promtool(), "test", "rules", "muster-rules.test.yml"], cwd=self.RULES.parent)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_the_rules_cover_what_matters(self):
        alerts = {rule["alert"] for group in load(self.RULES)["groups"] for rule in group["rules"]}
        for alert in ("MusterIncidentUnacknowledged", "MusterIncidentPastLastStep", "MusterDeliveriesFailing",
                      "MusterTimersLate", "MusterDeliveryQueueGrowing", "MusterCoverageGap", "MusterAuditCheckpointStalled"):
            self.assertIn(alert, alerts)

    def test_the_rules_use_only_metrics_muster_exposes(self):
        source = (REPO / "Sources" / "MusterHTTP" / "Metrics.swift").read_text(encoding="utf-8")
        exposed = set()
        for name, unit in re.findall(r'metricName: "(\w+)", unitName: "(\w*)"', source):
            base = f"muster_{name}" + (f"_{unit}" if unit else "")
            exposed.add(base)
            if unit == "seconds":  # histograms
                exposed |= {base + "_bucket", base + "_count", base + "_sum"}
        exposed |= {f"muster_{name}_total" for name in re.findall(r'counter\("(\w+)"', source)}
        self.assertIn("muster_pages_total", exposed)
        self.assertIn("muster_timer_lateness_seconds_bucket", exposed)
        used = set()
        for group in load(self.RULES)["groups"]:
            for rule in group["rules"]:
                used |= set(re.findall(r"\bmuster_[a-z_]+", rule["expr"]))
        self.assertTrue(used)
        for name in sorted(used):
            with self.subTest(metric=name):
                self.assertIn(name, exposed, f"{name} is not made by Sources/MusterHTTP/Metrics.swift")


class SystemdUnitTest(unittest.TestCase):
    UNIT = DEPLOY / "systemd" / "muster.service"

    def test_the_unit_is_hardened(self):
        text = self.UNIT.read_text(encoding="utf-8")
        for directive in ("DynamicUser=yes", "StateDirectory=muster", "ConfigurationDirectory=muster", "ProtectSystem=strict",
                          "ProtectHome=yes", "NoNewPrivileges=yes", "PrivateTmp=yes", "PrivateDevices=yes",
                          "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
                          "CapabilityBoundingSet=\n", "LockPersonality=yes", "MemoryDenyWriteExecute=yes", "Restart=on-failure",
                          "ExecReload=/bin/kill -HUP $MAINPID", "EnvironmentFile=-/etc/muster/muster.env",
                          "ExecStart=/usr/local/bin/muster serve"):
            self.assertIn(directive, text)

    def test_systemd_analyze_verify_passes(self):
        analyze = tool("systemd-analyze")
        if not analyze:
            missing(self, "systemd-analyze is not installed (Debian's systemd package has it)")
        with tempfile.TemporaryDirectory(prefix="muster-unit-") as folder:
            # verify requires ExecStart's program to exist: a stub stands in for /usr/local/bin/muster.
            stub = Path(folder) / "muster"
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
            unit = Path(folder) / "muster.service"
            unit.write_text(self.UNIT.read_text(encoding="utf-8").replace("/usr/local/bin/muster", str(stub)))
            result = run([analyze, "verify", str(unit)])
            ours = [line for line in (result.stdout + result.stderr).splitlines() if "muster" in line]
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertEqual(ours, [], "systemd-analyze has something to say about the unit")


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = load(DEPLOY / "compose.yaml")
        cls.services = cls.compose["services"]

    def test_the_stack_has_its_parts_each_with_a_health_check(self):
        self.assertEqual(set(self.services), {"db", "muster-1", "muster-2", "proxy", "mailpit"})
        self.assertTrue(self.services["db"]["image"].startswith("postgres:16"))
        for name, service in self.services.items():
            with self.subTest(service=name):
                self.assertIn("healthcheck", service)
        for name in ("muster-1", "muster-2"):
            self.assertIn("/health/ready", " ".join(self.services[name]["healthcheck"]["test"]))

    def test_secrets_come_from_files_that_make_secrets_writes(self):
        declared = self.compose["secrets"]
        for name, secret in declared.items():
            self.assertEqual(secret["file"], f"./secrets/{name}")
        for name in ("muster-1", "muster-2", "db"):
            service = self.services[name]
            environment = service["environment"]
            for variable, value in environment.items():
                if variable.endswith("_FILE") and (variable.startswith("POSTGRES_") or variable[:-5] in muster_env_secrets()):
                    with self.subTest(service=name, variable=variable):
                        secret = value.removeprefix("/run/secrets/")
                        self.assertIn(secret, service["secrets"])
                        self.assertIn(secret, declared)
        muster = self.services["muster-1"]["environment"]
        for key in ("MUSTER_MASTER_KEY_FILE", "MUSTER_LINK_KEY_FILE", "MUSTER_AUDIT_SIGNING_KEY_FILE"):
            self.assertEqual(muster[key], self.services["muster-2"]["environment"][key])
        self.assertTrue(muster["MUSTER_DATABASE_URL"].startswith("postgres://muster@db:5432/muster"))

    def test_only_the_proxy_is_trusted_and_it_forwards_to_both(self):
        config = load(DEPLOY / "compose" / "muster.yaml")
        proxy = self.services["proxy"]["networks"]["backend"]["ipv4_address"]
        self.assertEqual(config["trusted_proxies"], [proxy])
        caddyfile = (DEPLOY / "compose" / "Caddyfile").read_text(encoding="utf-8")
        self.assertIn("reverse_proxy muster-1:8080 muster-2:8080", caddyfile)
        self.assertIn("health_uri /health/ready", caddyfile)

    def test_docker_compose_config_accepts_it(self):
        docker = shutil.which("docker")
        if docker and run([docker, "compose", "version"]).returncode == 0:
            command = [docker, "compose"]
        elif shutil.which("docker-compose"):
            command = [shutil.which("docker-compose")]
        else:
            # Not required in CI: no Compose plugin is packaged for this Debian release.
            self.skipTest("no Docker Compose here (docker compose or docker-compose); its own check is skipped")
        with tempfile.TemporaryDirectory(prefix="muster-compose-") as folder:
            copy = Path(folder) / "deploy"
            shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("secrets"))
            run([str(copy / "make-secrets"), str(copy / "secrets")], check=True)
            result = run(command + ["-f", str(copy / "compose.yaml"), "config", "--quiet"])
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class DockerfileTest(unittest.TestCase):
    DOCKERFILE = DEPLOY / "Dockerfile"

    def test_the_image_is_built_in_two_stages_and_runs_unprivileged(self):
        text = self.DOCKERFILE.read_text(encoding="utf-8")
        stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
        self.assertEqual(stages, ["swift:6.1-bookworm", "swift:6.1-bookworm-slim"])
        self.assertIn("swift build -c release --product muster", text)
        self.assertIn("*.resources", text)
        user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
        self.assertEqual(len(user), 1)
        self.assertNotIn(user[0].split(":")[0], ("root", "0"))
        self.assertRegex(text, r"HEALTHCHECK [^\n]*\\\n[^\n]*/health/ready")
        self.assertIn("EXPOSE 8080", text)
        self.assertRegex(text, r'ENTRYPOINT \["/usr/local/bin/muster-env", "/usr/local/bin/muster"\]')
        self.assertIn('CMD ["serve", "--host", "0.0.0.0"]', text)

    def test_everything_the_build_needs_is_copied(self):
        text = self.DOCKERFILE.read_text(encoding="utf-8")
        copied = set(re.findall(r"^COPY (?:--\S+ )*(\S+)", text, re.MULTILINE))
        package = (REPO / "Package.swift").read_text(encoding="utf-8")
        needed = {"Package.swift", "Sources", "playbooks", "deploy/muster-env"}
        needed |= {path.split("/")[0] for path in re.findall(r'path: "([^"]+)"', package)}
        for name in sorted(needed):
            with self.subTest(path=name):
                self.assertIn(name, copied)
                self.assertTrue((REPO / name).exists())
        ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
        self.assertIn(".build", ignored)

    def test_hadolint_if_installed(self):
        hadolint = shutil.which("hadolint")
        if not hadolint:
            # Debian packages no hadolint, so this check is optional, in CI too.
            self.skipTest("hadolint is not installed (no Debian package provides it)")
        result = run([hadolint, str(self.DOCKERFILE)])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class ScriptsTest(unittest.TestCase):
    def test_muster_env_reads_exactly_the_secret_settings_and_pgpassword(self):
        source = (REPO / "Sources" / "muster" / "Settings.swift").read_text(encoding="utf-8")
        secret = set()
        for declaration in source.split("static let ")[1:]:
            match = re.match(r'\w+ = Setting\(key: "([a-z.]+)"', declaration)
            if match and "isSecret: true" in declaration.split("static let")[0]:
                secret.add("MUSTER_" + match.group(1).upper().replace(".", "_"))
        self.assertIn("MUSTER_MASTER_KEY", secret)
        self.assertEqual(muster_env_secrets(), secret | {"PGPASSWORD"})

    def test_muster_env_leaves_other_file_settings_alone(self):
        environment = {"PATH": os.environ["PATH"], "MUSTER_DELIVERY_FILE": "/var/lib/muster/deliveries.jsonl"}
        result = run([str(DEPLOY / "muster-env"), "sh", "-c", 'printf "%s" "$MUSTER_DELIVERY_FILE"'], env=environment)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "/var/lib/muster/deliveries.jsonl")

    def test_muster_env_reads_secrets_from_files(self):
        with tempfile.TemporaryDirectory(prefix="muster-env-") as folder:
            secret = Path(folder) / "key"
            secret.write_text("PRIVATE+KEY+a/b+0000+x/y=\n")
            environment = {"PATH": os.environ["PATH"], "MUSTER_AUDIT_SIGNING_KEY_FILE": str(secret), "PGPASSWORD_FILE": str(secret)}
            result = run([str(DEPLOY / "muster-env"), "sh", "-c",
                          'printf "%s|%s|%s" "$MUSTER_AUDIT_SIGNING_KEY" "$PGPASSWORD" "${MUSTER_AUDIT_SIGNING_KEY_FILE-unset}"'],
                         env=environment)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(result.stdout, "PRIVATE+KEY+a/b+0000+x/y=|PRIVATE+KEY+a/b+0000+x/y=|unset")
            both = run([str(DEPLOY / "muster-env"), "true"], env=environment | {"PGPASSWORD": "x"})
            self.assertEqual(both.returncode, 1)
            self.assertIn("both PGPASSWORD and PGPASSWORD_FILE", both.stderr)
            unreadable = run([str(DEPLOY / "muster-env"), "true"], env={"PATH": os.environ["PATH"], "MUSTER_LINK_KEY_FILE": folder + "/none"})
            self.assertEqual(unreadable.returncode, 1)
            self.assertIn("cannot be read", unreadable.stderr)

    def test_make_secrets_makes_keys_muster_accepts_and_never_replaces_them(self):
        with tempfile.TemporaryDirectory(prefix="muster-secrets-") as folder:
            secrets = Path(folder) / "secrets"
            first = run([str(DEPLOY / "make-secrets"), str(secrets), "--origin", "muster.test/audit-log"])
            self.assertEqual(first.returncode, 0, first.stderr)
            self.assertEqual(stat.S_IMODE(secrets.stat().st_mode), 0o700)
            read = {p.name: p.read_text().strip() for p in secrets.iterdir()}
            self.assertEqual(set(read), {"postgres_password", "master_key", "link_key", "audit_signing_key", "audit_verifier_key",
                                         "bootstrap_admin_token"})
            self.assertEqual(len(base64.b64decode(read["master_key"], validate=True)), 32)
            self.assertGreaterEqual(len(base64.b64decode(read["link_key"], validate=True)), 32)
            self.assertGreaterEqual(len(read["bootstrap_admin_token"]), 20)
            # The verifier key of docs/audit.md: name+keyID+base64(0x01 || public key), keyID from the name and key.
            name, key_id, public = read["audit_verifier_key"].split("+", 2)
            self.assertEqual(name, "muster.test/audit-log")
            raw = base64.b64decode(public)
            self.assertEqual(key_id, hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex())
            self.assertTrue(read["audit_signing_key"].startswith(f"PRIVATE+KEY+{name}+{key_id}+"))
            again = run([str(DEPLOY / "make-secrets"), str(secrets)])
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual({p.name: p.read_text().strip() for p in secrets.iterdir()}, read)
            binary = muster_binary()
            if not binary:
                missing(self, "no muster binary (.build/debug/muster) to check that it accepts the keys")
            empty = Path(folder) / "data"
            empty.mkdir(mode=0o700)
            printed = run([binary, "audit", "key", "--data-dir", str(empty)],
                          env={"PATH": os.environ["PATH"], "MUSTER_AUDIT_SIGNING_KEY": read["audit_signing_key"]})
            self.assertEqual(printed.returncode, 0, printed.stderr)
            self.assertEqual(printed.stdout.strip(), read["audit_verifier_key"])


class MusterReadsTheKitTest(unittest.TestCase):
    def binary(self) -> str:
        path = muster_binary()
        if not path:
            missing(self, "no muster binary (.build/debug/muster)")
        return path

    def test_the_kits_configuration_files_load(self):
        binary = self.binary()
        for config in (DEPLOY / "compose" / "muster.yaml", KUBERNETES / "muster.yaml"):
            with self.subTest(config=str(config.relative_to(REPO))):
                # coverage reads the file as `muster serve` does; exit 1 only reports gaps.
                result = run([binary, "playbook", "coverage", str(REPO / "playbooks"), "--config", str(config), "--days", "1",
                              "--channel", "chat"], env={"PATH": os.environ["PATH"]})
                self.assertIn(result.returncode, (0, 1), result.stderr)
                self.assertNotIn("error:", result.stderr)

    def test_every_command_and_option_in_operations_md_exists(self):
        binary = self.binary()
        tree = {"serve": [], "worker": [], "migrate": [], "simulate": [], "playbook": ["lint", "coverage"],
                "user": ["add", "list", "password"], "token": ["create", "revoke", "list"],
                "audit": ["key", "verify", "export"], "retention": ["purge"]}
        text = OPERATIONS.read_text(encoding="utf-8").replace("\\\n", " ")
        commands = {}
        for match in re.finditer(r"\bmuster ([a-z]+)(?: ([a-z]+))?([^`\n|]*)", text):
            command, sub, rest = match.groups()
            if command not in tree:
                continue
            path = (command, sub) if tree[command] else (command,)
            if tree[command]:
                self.assertIn(sub, tree[command], match.group(0))
            commands.setdefault(path, set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest))
        self.assertGreaterEqual(len(commands), 8, commands)
        for path, options in sorted(commands.items()):
            with self.subTest(command=" ".join(path)):
                result = run([binary, *path, "--help"])
                self.assertEqual(result.returncode, 0, result.stderr)
                for option in sorted(options):
                    self.assertIn(option, result.stdout, f"muster {' '.join(path)} has no {option}")


class DocumentationTest(unittest.TestCase):
    def test_operations_md_is_linked_and_the_kit_index_names_every_file(self):
        self.assertIn("(docs/operations.md)", (REPO / "README.md").read_text(encoding="utf-8"))
        index = (DEPLOY / "README.md").read_text(encoding="utf-8")
        self.assertIn("../docs/operations.md", index)
        for path in sorted(DEPLOY.rglob("*")):
            if path.is_file() and path.name not in ("README.md", ".gitignore") and "secrets" not in path.parts:
                relative = path.relative_to(DEPLOY)
                with self.subTest(path=str(relative)):
                    self.assertTrue(str(relative) in index or relative.name in index or f"{relative.parent}/" in index,
                                    f"deploy/README.md does not mention {relative}")


if __name__ == "__main__":
    unittest.main()
