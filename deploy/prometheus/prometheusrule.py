#!/usr/bin/env python3
"""Writes deploy/k8s/overlays/prod/prometheusrule.yaml from tlscache-rules.yml: the same
groups as a PrometheusRule, for prometheus-operator. Run it after changing the rules
(tests/deploy/prometheus_test.py fails while the two differ)."""

import os

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "tlscache-rules.yml")
OUT = os.path.join(HERE, "..", "k8s", "overlays", "prod", "prometheusrule.yaml")
HEADER = """\
# deploy/prometheus/tlscache-rules.yml as prometheus-operator takes it: the same groups, for a
# Prometheus that selects PrometheusRules (add the label its ruleSelector asks for, e.g.
# release: prometheus). Written by deploy/prometheus/prometheusrule.py; do not edit.
"""


def block_strings(dumper, text):
    return dumper.represent_scalar("tag:yaml.org,2002:str", text,
                                   style="|" if "\n" in text else None)


def main():
    with open(RULES) as f:
        groups = yaml.safe_load(f)["groups"]
    yaml.add_representer(str, block_strings, Dumper=yaml.SafeDumper)
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "tlscache", "labels": {"app.kubernetes.io/name": "tlscache",
                                                    "app.kubernetes.io/component": "alerting"}},
        "spec": {"groups": groups},
    }
    with open(OUT, "w") as f:
        f.write(HEADER + yaml.safe_dump(rule, sort_keys=False, width=100))


if __name__ == "__main__":
    main()
