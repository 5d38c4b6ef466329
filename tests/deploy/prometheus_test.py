"""deploy/prometheus and deploy/grafana: the alert rules load (`promtool check rules`), each
alert fires where its unit test says and stays quiet in a healthy farm (`promtool test
rules`), each names a runbook in docs/operations.md, every metric the rules and the dashboard
read is one tlscache writes, every dashboard query is valid PromQL, and the prod overlay's
PrometheusRule carries the same groups as the rules file."""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "tlscache-rules.yml")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "tlscache-rules-test.yml")
PROMETHEUS_RULE = os.path.join(ROOT, "deploy", "k8s", "overlays", "prod", "prometheusrule.yaml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "tlscache-dashboard.json")
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")

# A series name in PromQL: tlscache metrics and the rules' recorded series.
SERIES = re.compile(r"\btlscache(?::[a-z0-9_]+:[a-z0-9_]+|_[a-z0-9_]+)\b")


def promtool(*args):
    path = shutil.which("promtool")
    if path is None:
        raise unittest.SkipTest("promtool is not installed (Debian's prometheus package)")
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=120)


def rules():
    with open(RULES) as f:
        return yaml.safe_load(f)


def alerts():
    return [rule for group in rules()["groups"] for rule in group["rules"] if "alert" in rule]


def written_metrics():
    """Every tlscache_* name the code writes (the service's /metrics, the plugin's and
    keysync's textfiles), with a histogram's series."""
    names = set()
    for pattern in ("server/**/*.cc", "plugins/openssl/*.cc", "tools/keysync/*.cc",
                    "common/*.cc"):
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            with open(path) as f:
                names.update(re.findall(r'"(tlscache_[a-z0-9_]+)"', f.read()))
    return names | {f"{name}_{suffix}" for name in names for suffix in ("bucket", "sum", "count")}


def dashboard_queries():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel["targets"]]


class RulesTest(unittest.TestCase):
    def test_the_rules_load(self):
        result = promtool("check", "rules", RULES)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_each_alert_fires_in_its_test_and_stays_quiet_in_a_healthy_farm(self):
        result = promtool("test", "rules", RULE_TESTS)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with open(RULE_TESTS) as f:
            cases = [case for test in yaml.safe_load(f)["tests"]
                     for case in test.get("alert_rule_test", [])]
        for alert in alerts():
            name = alert["alert"]
            self.assertTrue(any(c["alertname"] == name and c.get("exp_alerts") for c in cases),
                            f"{name}: no test where it fires")
            self.assertTrue(any(c["alertname"] == name and not c.get("exp_alerts")
                                for c in cases), f"{name}: no test where it stays quiet")

    def test_each_alert_has_a_runbook_in_the_operations_guide(self):
        with open(OPERATIONS) as f:
            headings = {line[4:].strip() for line in f if line.startswith("### ")}
        for alert in alerts():
            name = alert["alert"]
            self.assertIn(name, headings, f"docs/operations.md has no ### {name}")
            self.assertEqual(alert["annotations"]["runbook_url"],
                             f"docs/operations.md#{name.lower()}")

    def test_each_runbook_states_the_alerts_severity_condition_and_steps(self):
        with open(OPERATIONS) as f:
            sections = {part.partition("\n")[0].strip(): part
                        for part in re.split(r"^### ", f.read(), flags=re.MULTILINE)[1:]}
        for alert in alerts():
            name = alert["alert"]
            expr = " ".join(alert["expr"].split())
            head = f"**{alert['labels']['severity']}**, when `{expr}`"
            if "for" in alert:
                head += f" for {alert['for']}"
            section = sections[name]
            self.assertIn(head + ".", " ".join(section.split()), name)
            self.assertRegex(section, r"\n1\. ", f"{name}: no steps")

    def test_every_series_the_rules_read_is_written_or_recorded(self):
        known = written_metrics() | {r["record"] for g in rules()["groups"] for r in g["rules"]
                                     if "record" in r}
        for group in rules()["groups"]:
            for rule in group["rules"]:
                for series in SERIES.findall(rule["expr"]):
                    self.assertIn(series, known, f"{rule.get('alert', rule.get('record'))}")

    def test_the_prometheus_rule_of_the_prod_overlay_carries_the_same_groups(self):
        with open(PROMETHEUS_RULE) as f:
            operator_rule = yaml.safe_load(f)
        self.assertEqual(operator_rule["kind"], "PrometheusRule")
        self.assertEqual(operator_rule["spec"]["groups"], rules()["groups"],
                         "run deploy/prometheus/prometheusrule.py")


class DashboardTest(unittest.TestCase):
    def test_every_query_is_valid_promql(self):
        # promtool checks PromQL in rule files: each query becomes a recording rule.
        queries = dashboard_queries()
        self.assertGreaterEqual(len(queries), 10)
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
                {"record": f"dashboard:query_{i}:check", "expr": expr}
                for i, (_, expr) in enumerate(queries)]}]}, f)
            f.flush()
            result = promtool("check", "rules", f.name)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_every_series_a_query_reads_is_written_or_recorded(self):
        known = written_metrics() | {r["record"] for g in rules()["groups"] for r in g["rules"]
                                     if "record" in r}
        for title, expr in dashboard_queries():
            for series in SERIES.findall(expr):
                self.assertIn(series, known, title)

    def test_a_wrong_query_is_caught(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "d", "rules": [
                {"record": "dashboard:wrong:check", "expr": "sum by (x (rate(up[5m]))"}]}]}, f)
            f.flush()
            self.assertNotEqual(promtool("check", "rules", f.name).returncode, 0)
        self.assertNotIn("tlscache_no_such_metric", written_metrics())
