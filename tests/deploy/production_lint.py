"""What a production review of rendered manifests looks for, as code: defects(objects) lists
each defect found in a list of Kubernetes objects (dicts), one line each naming the object.

  - a non-root container mounting a Secret volume whose files it cannot read
  - a workload without a PodDisruptionBudget, or one that counts minAvailable or blocks
    drains while pods are unready; a StatefulSet without a required spread over nodes, or
    over three zones (a zone lost must not take a majority); Redis not started in Parallel
    (a full restart waits on pods that wait on each other); state on an emptyDir
  - an image without a fixed version (no tag, "latest", or a tag short of MAJOR.MINOR.PATCH);
    another project's image not pinned by digest; Redis of an end-of-life line (7.0 and
    older get no security releases)
  - a CPU limit on tlscache-server (throttling stalls its calls in flight)
  - Redis ready on PING alone (a replica in a full resync), a sentinel without liveness
  - a Redis master that takes writes with no replica (no min-replicas-to-write)
  - `replicas` on a Deployment an autoscaler scales
  - a Deployment's serving container without preStop, or a grace period shorter than preStop
    plus tlscache-server's --shutdown_grace
  - no default-deny NetworkPolicy; DNS allowed only to the kube-dns pods (NodeLocal DNSCache
    breaks); metrics open to a pod label in any namespace
  - Prometheus annotations without a PodMonitor or ServiceMonitor (prometheus-operator
    ignores the annotations)
  - Redis or Sentinel without a password (the init scripts, the server's flags); the server
    given Redis's admin password instead of its own ACL user's
  - nginx with more workers than its CPU limit ("auto" counts the node's cores)
"""

import re

DEFAULT_SECRET_MODE = 0o644
DEFAULT_GRACE_SECONDS = 30


def _name(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _workloads(objects):
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def _duration_seconds(text):
    seconds = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        seconds += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return seconds


def _config_file(objects, file_name):
    """The contents of `file_name` in any ConfigMap, or None."""
    for obj in objects:
        if obj["kind"] == "ConfigMap" and file_name in obj.get("data", {}):
            return obj["data"][file_name]
    return None


def _cpu(limit):
    text = str(limit)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _secret_defects(obj):
    pod = obj["spec"]["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    fs_group = pod_security.get("fsGroup")
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    found = []
    for container in pod.get("initContainers", []) + pod.get("containers", []):
        security = container.get("securityContext", {})
        user = security.get("runAsUser", pod_security.get("runAsUser"))
        if user == 0 or (user is None and not security.get("runAsNonRoot",
                                                           pod_security.get("runAsNonRoot"))):
            continue
        for mount in container.get("volumeMounts", []):
            secret = secrets.get(mount["name"])
            if secret is None:
                continue
            modes = [item["mode"] for item in secret.get("items", []) if "mode" in item]
            modes.append(secret.get("defaultMode", DEFAULT_SECRET_MODE))
            for mode in modes:
                if not (mode & 0o004 or (fs_group is not None and mode & 0o040)):
                    found.append(f"{_name(obj)}: container {container['name']} (user {user}) "
                                 f"cannot read Secret volume {mount['name']} (mode "
                                 f"{mode:04o}, fsGroup {fs_group})")
    return found


def _selects(selector, labels):
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _disruption_defects(obj, budgets):
    labels = obj["spec"]["template"]["metadata"].get("labels", {})
    mine = [b for b in budgets if _selects(b["spec"].get("selector", {}), labels)]
    if not mine:
        return [f"{_name(obj)}: no PodDisruptionBudget"]
    found = []
    for budget in mine:
        spec = budget["spec"]
        if "minAvailable" in spec:
            found.append(f"{_name(budget)}: minAvailable lets a fixed number stay whatever the "
                         "replicas; give maxUnavailable")
        if spec.get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
            found.append(f"{_name(budget)}: blocks drains while pods are unready "
                         "(unhealthyPodEvictionPolicy: AlwaysAllow)")
    return found


def _spread_defects(obj):
    pod = obj["spec"]["template"]["spec"]
    required = pod.get("affinity", {}).get("podAntiAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", [])
    spread = [c for c in pod.get("topologySpreadConstraints", [])
              if c.get("whenUnsatisfiable") == "DoNotSchedule"]
    keys = {term.get("topologyKey") for term in required + spread}
    if "kubernetes.io/hostname" not in keys:
        return [f"{_name(obj)}: no required spread over nodes"]
    return []


def _zone_defects(obj):
    pod = obj["spec"]["template"]["spec"]
    if not any(c.get("topologyKey") == "topology.kubernetes.io/zone"
               and c.get("whenUnsatisfiable") == "DoNotSchedule" and c.get("minDomains", 0) >= 3
               for c in pod.get("topologySpreadConstraints", [])):
        return [f"{_name(obj)}: no required spread over three zones"]
    return []


def _statefulset_defects(obj):
    found = _spread_defects(obj) + _zone_defects(obj)
    pod = obj["spec"]["template"]["spec"]
    empty = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for container in pod.get("containers", []):
        for mount in container.get("volumeMounts", []):
            if mount["mountPath"] == "/data" and mount["name"] in empty:
                found.append(f"{_name(obj)}: keeps its state on an emptyDir")
                break
    if obj["metadata"]["name"] == "tlscache-redis" and \
            obj["spec"].get("podManagementPolicy") != "Parallel":
        found.append(f"{_name(obj)}: podManagementPolicy is not Parallel")
    return found


def _image_defects(obj):
    pod = obj["spec"]["template"]["spec"]
    found = []
    for container in pod.get("initContainers", []) + pod.get("containers", []):
        image = container["image"]
        name = image.split("@")[0]
        tag = name.rsplit("/", 1)[-1].partition(":")[2]
        where = f"{_name(obj)}: container {container['name']}: image {image}"
        if "@sha256:" not in image and not re.match(r"^v?\d+\.\d+\.\d+", tag):
            found.append(f"{where} has no fixed version")
        elif "@sha256:" not in image and not name.startswith("tlscache/"):
            found.append(f"{where} is not pinned by digest")
        if re.match(r"^(docker\.io/)?(library/)?redis:([0-6]\.|7\.0)", name):
            found.append(f"{where} is of an end-of-life line")
    return found


def _probe_command(container, probe):
    return " ".join(container.get(probe, {}).get("exec", {}).get("command", []))


def _probe_defects(obj):
    found = []
    for container in obj["spec"]["template"]["spec"].get("containers", []):
        ready = _probe_command(container, "readinessProbe")
        if container["name"] == "redis" and re.search(r"redis-cli.*ping$", ready):
            found.append(f"{_name(obj)}: Redis is ready on PING alone")
        if container["name"] == "sentinel" and "livenessProbe" not in container:
            found.append(f"{_name(obj)}: sentinel has no livenessProbe")
        if container["name"] == "tlscache-server" and \
                "cpu" in container.get("resources", {}).get("limits", {}):
            found.append(f"{_name(obj)}: a CPU limit on tlscache-server")
    return found


def _network_defects(objects):
    found = []
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            if any(p.get("port") == 53 for p in rule.get("ports", [])) and rule.get("to") and \
                    all("podSelector" in peer for peer in rule["to"]):
                found.append(f"NetworkPolicy/{policy['metadata']['name']}: DNS only to pods "
                             "(NodeLocal DNSCache answers elsewhere)")
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if peer.get("namespaceSelector") == {} and \
                        any(p.get("port") == 7702 for p in rule.get("ports", [])):
                    found.append(f"NetworkPolicy/{policy['metadata']['name']}: metrics open to "
                                 "a pod label in any namespace")
    annotated = any(o["spec"]["template"]["metadata"].get("annotations", {})
                    .get("prometheus.io/scrape") == "true" for o in _workloads(objects))
    monitored = any(o["kind"] in ("PodMonitor", "ServiceMonitor") for o in objects)
    if annotated and any(o["kind"] == "PrometheusRule" for o in objects) and not monitored:
        found.append("no PodMonitor or ServiceMonitor beside the scrape annotations")
    return found


def _prestop_sleep(container):
    command = " ".join(container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
                       .get("command", []))
    sleeps = re.findall(r"sleep (\d+)", command)
    return sum(int(s) for s in sleeps[:1])


def _termination_defects(obj, objects):
    pod = obj["spec"]["template"]["spec"]
    grace = pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    found = []
    for container in pod.get("containers", []):
        if not container.get("ports"):
            continue
        if "preStop" not in container.get("lifecycle", {}):
            found.append(f"{_name(obj)}: container {container['name']} has no preStop (it "
                         "stops while still getting new connections)")
            continue
        needed = _prestop_sleep(container)
        if container["name"] == "tlscache-server":
            flags = _config_file(objects, "server.flags") or ""
            match = re.search(r"^--shutdown_grace=(\S+)", flags, re.MULTILINE)
            needed += _duration_seconds(match.group(1)) if match else 10
        if grace <= needed:
            found.append(f"{_name(obj)}: terminationGracePeriodSeconds {grace} is not more "
                         f"than preStop and the shutdown grace ({needed:g} s)")
    return found


def _auth_defects(objects):
    found = []
    redis_init = _config_file(objects, "redis-init.sh")
    if redis_init is None:
        return found
    functions = _config_file(objects, "find-master.sh") or ""
    acl = functions[functions.find("redis_acl() {"):]
    if "redis_acl" not in redis_init or not ("user default on" in acl and "masterauth" in acl):
        found.append("Redis: redis-init.sh sets no password (user default, masterauth)")
    sentinel_init = _config_file(objects, "sentinel-init.sh") or ""
    acl = functions[functions.find("sentinel_acl() {"):]
    if "sentinel_acl" not in sentinel_init or not ("user default on" in acl
                                                   and "auth-pass" in acl):
        found.append("Sentinel: sentinel-init.sh sets no password (user default, auth-pass)")
    redis_conf = _config_file(objects, "redis.conf") or ""
    if re.search(r"^protected-mode no", redis_conf, re.MULTILINE):
        found.append("Redis: redis.conf turns protected-mode off")
    if not re.search(r"^min-replicas-to-write [1-9]", redis_conf, re.MULTILINE):
        found.append("Redis: redis.conf has no min-replicas-to-write (a master cut off from "
                     "its replicas takes writes a failover discards)")
    for obj in _workloads(objects):
        for volume in obj["spec"]["template"]["spec"].get("volumes", []):
            secret = volume.get("secret", {})
            if obj["metadata"]["name"] == "tlscache-server" and \
                    secret.get("secretName") == "tlscache-redis-auth" and \
                    "password" in [i["key"] for i in secret.get("items", [{"key": "password"}])]:
                found.append(f"{_name(obj)}: given Redis's admin password, not its ACL user's")
    flags = _config_file(objects, "server.flags") or ""
    for flag in ("--redis_password_file", "--sentinel_password_file"):
        if "--store=redis" in flags and flag not in flags:
            found.append(f"tlscache-server: no {flag} for its Redis store")
    return found


def _nginx_defects(objects):
    conf = _config_file(objects, "nginx.conf")
    if conf is None:
        return []
    match = re.search(r"^\s*worker_processes\s+(\S+);", conf, re.MULTILINE)
    workers = match.group(1) if match else "1"
    found = []
    for obj in _workloads(objects):
        for container in obj["spec"]["template"]["spec"].get("containers", []):
            if container["name"] != "nginx":
                continue
            limit = container.get("resources", {}).get("limits", {}).get("cpu")
            if workers == "auto" or (limit is not None and int(workers) > _cpu(limit)):
                found.append(f"{_name(obj)}: worker_processes {workers} for a CPU limit of "
                             f"{limit}")
    return found


def defects(objects):
    objects = [o for o in objects if o]
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    found = []
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in objects
              if o["kind"] == "HorizontalPodAutoscaler"}
    for obj in _workloads(objects):
        found += _secret_defects(obj)
        found += _image_defects(obj)
        found += _probe_defects(obj)
        if obj["kind"] == "Deployment":  # behind a Service that balances connections
            found += _termination_defects(obj, objects)
        found += _disruption_defects(obj, budgets)
        if obj["kind"] == "StatefulSet":
            found += _statefulset_defects(obj)
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] in scaled \
                and "replicas" in obj["spec"]:
            found.append(f"{_name(obj)}: replicas on a Deployment an autoscaler scales")
    if not any(o["kind"] == "NetworkPolicy" and not o["spec"].get("podSelector")
               and "Ingress" in o["spec"].get("policyTypes", []) and not o["spec"].get("ingress")
               for o in objects):
        found.append("no default-deny NetworkPolicy")
    found += _auth_defects(objects)
    found += _network_defects(objects)
    found += _nginx_defects(objects)
    return found
