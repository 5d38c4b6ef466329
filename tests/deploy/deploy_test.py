"""deploy/: every kustomize overlay renders with kubectl and every object it renders validates
against the Kubernetes schemas (kubernetes-models, installed from the npm registry); every
flag the manifests give tlscache-server is one it accepts; and every path and build target the
Dockerfile names exists."""

import copy
import os
import re
import shutil
import subprocess
import unittest

import yaml

import production_lint

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
BIN_DIR = os.environ.get("TLSCACHE_BIN_DIR", os.path.join(ROOT, "build", "bin"))
BUILD_DIR = os.path.dirname(BIN_DIR)
NPM_DIR = os.environ.get("TLSCACHE_NPM_DIR", os.path.join(BUILD_DIR, "npm"))
VALIDATOR = os.path.join(os.path.dirname(__file__), "validate.js")
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/prod", "examples/nginx-frontend",
                  "examples/nginx-keysync"]


def require(binary):
    path = shutil.which(binary)
    if path is None:
        raise unittest.SkipTest(f"{binary} is not installed")
    return path


def render(kustomization):
    result = subprocess.run([require("kubectl"), "kustomize", os.path.join(K8S, kustomization)],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {kustomization}: {result.stderr}")
    return result.stdout


def validator_modules():
    """node_modules with kubernetes-models and yaml, installed once per build directory."""
    modules = os.path.join(NPM_DIR, "node_modules")
    if not os.path.isdir(os.path.join(modules, "@kubernetes-models", "prometheus-operator")):
        os.makedirs(NPM_DIR, exist_ok=True)
        subprocess.run([require("npm"), "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund",
                        "--loglevel=error", "kubernetes-models@4", "yaml@2",
                        "@kubernetes-models/prometheus-operator@6"],
                       check=True, capture_output=True, timeout=300)
    return modules


def validate(rendered):
    result = subprocess.run([require("node"), VALIDATOR, validator_modules()], input=rendered,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def server_flags():
    """The flags tlscache-server accepts, from its --helpfull."""
    result = subprocess.run([os.path.join(BIN_DIR, "tlscache-server"), "--helpfull"],
                            capture_output=True, text=True, timeout=30)
    return set(re.findall(r"^\s+--(\w+) \(", result.stdout + result.stderr, re.MULTILINE))


class KubernetesTest(unittest.TestCase):
    def test_every_overlay_renders_and_every_object_is_valid(self):
        for kustomization in KUSTOMIZATIONS:
            code, output = validate(render(kustomization))
            self.assertEqual(code, 0, f"{kustomization}:\n{output}")
            print(f"\n  {kustomization}: {output.count('valid ')} objects valid", flush=True)

    def test_the_validator_rejects_a_wrong_object(self):
        code, output = validate("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
                                "spec: {replicas: three, selector: {}, template: {}}\n")
        self.assertEqual(code, 1, output)
        self.assertIn("replicas must be integer", output)

    def test_overlays_have_what_operators_expect(self):
        dev, prod = render("overlays/dev"), render("overlays/prod")
        self.assertIn("--store=memory", dev)
        self.assertNotIn("kind: StatefulSet", dev)
        for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy",
                     "StatefulSet"):
            self.assertIn(f"kind: {kind}", prod)
        self.assertIn("replicas: 3", prod)
        self.assertIn("podAntiAffinity", prod)
        self.assertIn("readOnlyRootFilesystem: true", prod)
        self.assertIn("runAsNonRoot: true", prod)
        self.assertIn("grpc:\n", prod)  # native gRPC probes
        self.assertIn("secretName: tlscache-seal-keys", prod)
        # Secrets are referenced, never committed.
        for kustomization in KUSTOMIZATIONS:
            self.assertNotIn("kind: Secret", render(kustomization))
        for dirpath, _, files in os.walk(os.path.join(ROOT, "deploy")):
            for name in files:
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    self.assertNotIn("PRIVATE KEY", f.read(), name)

    def test_every_flag_in_the_manifests_is_a_flag_the_server_accepts(self):
        accepted = server_flags()
        self.assertIn("seal_key_file", accepted)
        for kustomization in KUSTOMIZATIONS:
            rendered = render(kustomization)
            # The server's flags: its flag file (a generated ConfigMap) and its args.
            used = set()
            for block in re.findall(r"server\.flags: \|\n((?:\s{4,}.*\n)+)", rendered):
                used |= set(re.findall(r"^\s+--(\w+)", block, re.MULTILINE))
            for args in re.findall(r"name: tlscache-server\n\s+image: .*\n\s+args:\n((?:\s+- .*\n)+)",
                                   rendered):
                used |= set(re.findall(r"- --(\w+)", args)) - {"flagfile"}  # absl's own
            if "tlscache-server-flags" in rendered:
                self.assertTrue(used, kustomization)
            unknown = used - accepted
            self.assertFalse(unknown, f"{kustomization}: flags the server does not accept: "
                                      f"{sorted(unknown)}")
        # The dev flags need no file: the server takes them as they are.
        result = subprocess.run([os.path.join(BIN_DIR, "tlscache-server"), "--dry_run",
                                 f"--flagfile={os.path.join(K8S, 'overlays/dev/server.flags')}"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)


class ProductionManifestsTest(unittest.TestCase):
    """The prod overlay and the nginx example, rendered, pass production_lint; each defect
    it knows, put back into them, is found."""

    @classmethod
    def setUpClass(cls):
        cls.objects = [o for kustomization in ("overlays/prod", "examples/nginx-frontend",
                                               "examples/nginx-keysync")
                       for o in yaml.safe_load_all(render(kustomization)) if o]

    def find(self, kind, name):
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"].startswith(name):
                return obj
        raise AssertionError(f"no {kind}/{name}")

    def test_the_rendered_manifests_have_no_defect(self):
        self.assertEqual(production_lint.defects(self.objects), [])

    def test_each_defect_put_back_is_found(self):
        def pod(obj):
            return obj["spec"]["template"]["spec"]

        def container(obj, name):
            return next(c for c in pod(obj)["containers"] if c["name"] == name)

        def without(kind, name):
            return lambda objects: objects.remove(
                next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name))

        def edit(kind, name, change):
            def apply(objects):
                change(next(o for o in objects if o["kind"] == kind
                            and o["metadata"]["name"].startswith(name)))
            return apply

        def config(file_name, old, new):
            def change(obj):
                obj["data"][file_name] = obj["data"][file_name].replace(old, new)
            return lambda objects: change(next(o for o in objects if o["kind"] == "ConfigMap"
                                               and file_name in o.get("data", {})))

        cases = {
            "cannot read Secret volume": edit("Deployment", "nginx-frontend",
                                              lambda o: pod(o)["securityContext"].pop("fsGroup")),
            "StatefulSet/tlscache-redis: no PodDisruptionBudget":
                without("PodDisruptionBudget", "tlscache-redis"),
            "minAvailable": edit("PodDisruptionBudget", "tlscache-server",
                                 lambda o: o["spec"].update(minAvailable=2)),
            "blocks drains": edit("PodDisruptionBudget", "tlscache-sentinel",
                                  lambda o: o["spec"].pop("unhealthyPodEvictionPolicy")),
            "StatefulSet/tlscache-sentinel: no required spread": edit(
                "StatefulSet", "tlscache-sentinel", lambda o: pod(o)["affinity"].pop(
                    "podAntiAffinity")),
            "image redis:latest has no fixed version": edit(
                "StatefulSet", "tlscache-redis",
                lambda o: container(o, "redis").update(image="redis:latest")),
            "image redis:7.4.7 is not pinned by digest": edit(
                "StatefulSet", "tlscache-redis",
                lambda o: container(o, "redis").update(image="redis:7.4.7")),
            "is of an end-of-life line": edit(
                "StatefulSet", "tlscache-redis", lambda o: container(o, "redis").update(
                    image="redis:7.0.15@sha256:" + "0" * 64)),
            "StatefulSet/tlscache-sentinel: no required spread over three zones": edit(
                "StatefulSet", "tlscache-sentinel", lambda o: pod(o)[
                    "topologySpreadConstraints"][0].update(whenUnsatisfiable="ScheduleAnyway")),
            "StatefulSet/tlscache-redis: no required spread over three zones": edit(
                "StatefulSet", "tlscache-redis", lambda o: pod(o)[
                    "topologySpreadConstraints"][0].pop("minDomains")),
            "podManagementPolicy is not Parallel": edit(
                "StatefulSet", "tlscache-redis",
                lambda o: o["spec"].update(podManagementPolicy="OrderedReady")),
            "keeps its state on an emptyDir": edit(
                "StatefulSet", "tlscache-sentinel", lambda o: (
                    o["spec"].pop("volumeClaimTemplates"),
                    pod(o)["volumes"].append({"name": "data", "emptyDir": {}}))),
            "a CPU limit on tlscache-server": edit(
                "Deployment", "tlscache-server", lambda o: container(o, "tlscache-server")[
                    "resources"]["limits"].update(cpu="2")),
            "Redis is ready on PING alone": edit(
                "StatefulSet", "tlscache-redis", lambda o: container(o, "redis")[
                    "readinessProbe"].update({"exec": {"command": ["redis-cli", "ping"]}})),
            "sentinel has no livenessProbe": edit(
                "StatefulSet", "tlscache-sentinel",
                lambda o: container(o, "sentinel").pop("livenessProbe")),
            "no min-replicas-to-write": config("redis.conf", "min-replicas-to-write 1", ""),
            "DNS only to pods": edit("NetworkPolicy", "dns", lambda o: o["spec"]["egress"][0]
                                     .update(to=[{"podSelector": {"matchLabels": {
                                         "k8s-app": "kube-dns"}}}])),
            "metrics open to a pod label in any namespace": edit(
                "NetworkPolicy", "tlscache-server",
                lambda o: o["spec"]["ingress"][1]
                .update({"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
                    "app.kubernetes.io/name": "prometheus"}}}]})),
            "no PodMonitor or ServiceMonitor": without("PodMonitor", "tlscache-server"),
            "given Redis's admin password": edit(
                "Deployment", "tlscache-server", lambda o: next(
                    v for v in pod(o)["volumes"] if v["name"] == "redis-auth")["secret"].pop(
                        "items")),
            "replicas on a Deployment an autoscaler scales": edit(
                "Deployment", "tlscache-server", lambda o: o["spec"].update(replicas=3)),
            "container tlscache-server has no preStop": edit(
                "Deployment", "tlscache-server",
                lambda o: container(o, "tlscache-server").pop("lifecycle")),
            "terminationGracePeriodSeconds 20 is not more than preStop and the shutdown grace "
            "(25 s)": edit("Deployment", "tlscache-server",
                           lambda o: pod(o).update(terminationGracePeriodSeconds=20)),
            "no default-deny NetworkPolicy": without("NetworkPolicy", "default-deny"),
            "redis-init.sh sets no password": config("redis-init.sh", "  redis_acl\n", ""),
            "sentinel-init.sh sets no password": config("sentinel-init.sh", "  sentinel_acl\n",
                                                        ""),
            "protected-mode off": config("redis.conf", "protected-mode yes", "protected-mode no"),
            "no --sentinel_password_file": config(
                "server.flags", "--sentinel_password_file=/etc/tlscache/redis/service\n", ""),
            "worker_processes auto": config("nginx.conf", "worker_processes 2;",
                                            "worker_processes auto;"),
            "worker_processes 64 for a CPU limit of 2": config(
                "nginx.conf", "worker_processes 2;", "worker_processes 64;"),
        }
        for expected, put_back in cases.items():
            objects = copy.deepcopy(self.objects)
            put_back(objects)
            found = production_lint.defects(objects)
            self.assertTrue(found, f"{expected}: not found")
            for defect in found:  # that defect, and nothing else
                self.assertIn(expected, defect)


class DockerfileTest(unittest.TestCase):
    """No Docker engine here: the Dockerfile is checked against the tree and the build."""

    def setUp(self):
        with open(os.path.join(ROOT, "deploy", "docker", "Dockerfile")) as f:
            self.dockerfile = f.read()

    def test_every_copied_path_exists(self):
        for line in re.findall(r"^COPY (?!--from)(.+)$", self.dockerfile, re.MULTILINE):
            for source in line.split()[:-1]:
                self.assertTrue(os.path.exists(os.path.join(ROOT, source)), source)
        built = re.findall(r"^COPY --from=build (.+)$", self.dockerfile, re.MULTILINE)
        self.assertTrue(built)
        for line in built:
            for source in line.split()[:-1]:
                # /build is the container's build directory; ours has the same layout.
                local = os.path.join(BUILD_DIR, os.path.relpath(source, "/build"))
                self.assertTrue(os.path.exists(local), f"{source} ({local} is not built)")

    def test_every_build_target_exists(self):
        targets = subprocess.run(["cmake", "--build", BUILD_DIR, "--target", "help"],
                                 capture_output=True, text=True, timeout=60).stdout
        named = re.findall(r"--target ([\w\- ]+?)(?: \\|&&|$)", self.dockerfile, re.MULTILINE)
        self.assertTrue(named)
        for name in " ".join(named).split():
            self.assertRegex(targets, rf"(?m)^{re.escape(name)}:", name)

    def test_every_runtime_package_exists_in_debian(self):
        stages = self.dockerfile.split("\nFROM ")[1:]
        for stage in stages:
            for packages in re.findall(r"--no-install-recommends \\\n((?:\s+[\w.+\- ]+\\?\n)+)",
                                       stage):
                for package in packages.replace("\\", " ").split():
                    if package.startswith("&&"):
                        break
                    result = subprocess.run(["apt-cache", "show", package],
                                            capture_output=True, timeout=60)
                    self.assertEqual(result.returncode, 0, f"no Debian package {package}")


if __name__ == "__main__":
    unittest.main()
