"""Parses a Prometheus text exposition from stdin with the reference parser
(prometheus_client) and prints one sample per line: name{labels} value.
Exits non-zero if the text does not parse."""
import sys
from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value!r}")
