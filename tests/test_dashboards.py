#!/usr/bin/python3
"""The shipped dashboards (dashboards/*.ndjson), structurally: every line is a
saved object, every reference resolves within the file, every field a
visualization aggregates on is mapped by the template trackpixel --setup
installs (read back from the stand-in) with an aggregatable type, and every
column of the saved search is a field the template keeps."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq  # noqa: E402
from es_mapping import Flavor, Mapping  # noqa: E402
from es_standin import Standin  # noqa: E402

DIR = os.path.join(tplib.SRCDIR, "dashboards")
AGGREGATABLE = {"keyword", "date", "ip", "long", "integer", "short", "byte", "double", "float",
                "boolean"}


def objects(name):
    out = []
    with open(os.path.join(DIR, name), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            obj = json.loads(line)
            for key in ("id", "type", "attributes", "references"):
                assert key in obj, "%s line %d: no %s" % (name, n, key)
            out.append(obj)
    return out


def template_mapping(opts):
    """The mapping of a new index under the template --setup installs."""
    with Standin(**opts) as es:
        p = subprocess.run([tplib.TRACKPIXEL, "--setup"], capture_output=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "TRACKPIXEL_ES_URL": es.url,
                                "TRACKPIXEL_ES_USER_AGENT": "1"})
        eq(p.returncode, 0, "--setup: %r" % p.stdout)
        body = es.request("GET", "/_index_template/trackpixel").json()
    tmpl = body["index_templates"][0]["index_template"]["template"]
    flavor = Flavor(opts.get("distribution", "elasticsearch"), opts.get("version_number", "7.10.2"))
    return Mapping("events", flavor, tmpl["mappings"], tmpl.get("settings"))


def field_type(m, path):
    """The type path gets: its own mapping, the flattened/flat_object field
    above it (flattened keys are keywords; flat_object keys have no doc
    values), or a dynamic template for a string."""
    if path in m.fields:
        return m.fields[path]["type"]
    parts = path.split(".")
    for k in range(len(parts) - 1, 0, -1):
        above = m.fields.get(".".join(parts[:k]))
        if above is None:
            continue
        if above["type"] == "flattened":
            return "keyword"
        if above["type"] == "flat_object":
            return "flat_object subfield"
        if above["type"] == "object" and (not above["enabled"] or above["dynamic"] in
                                          (False, "false")):
            return None
        break
    spec = m._template_for(path, "string")
    return spec.get("type") if spec else None


def check(name, mapping):
    objs = objects(name)
    ids = {(o["type"], o["id"]) for o in objs}
    eq(len(ids), len(objs), "ids unique")
    for o in objs:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, "%s: %r does not resolve" % (o["id"], ref)
        meta = o["attributes"].get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if meta and "indexRefName" in json.loads(meta):
            assert json.loads(meta)["indexRefName"] in [r["name"] for r in o["references"]], o["id"]
    dash = [o for o in objs if o["type"] == "dashboard"]
    eq(len(dash), 1, "one dashboard")
    panels = json.loads(dash[0]["attributes"]["panelsJSON"])
    names = {r["name"] for r in dash[0]["references"]}
    eq(sorted(p["panelRefName"] for p in panels), sorted(names), "every panel is a reference")
    eq(len(panels), len([o for o in objs if o["type"] in ("visualization", "search")]),
       "every visualization and search on the dashboard")
    used = []
    for o in objs:
        if o["type"] == "visualization":
            for agg in json.loads(o["attributes"]["visState"])["aggs"]:
                if "field" in agg["params"]:
                    used.append(agg["params"]["field"])
                    t = field_type(mapping, agg["params"]["field"])
                    assert t in AGGREGATABLE, "%s: %s is %s" % (o["id"], agg["params"]["field"], t)
        if o["type"] == "search":
            for col in o["attributes"]["columns"]:
                assert field_type(mapping, col) is not None, "%s: column %s" % (o["id"], col)
    return sorted(set(used))


def test_kibana():
    used = check("kibana.ndjson", template_mapping({}))
    eq(used, ["@timestamp", "context.http-method", "context.resource-path", "context.user-agent",
              "params.header.Referer", "params.querystring.page", "params.querystring.utm_campaign",
              "params.querystring.utm_medium", "params.querystring.utm_source", "user_agent.name",
              "user_agent.os.name"], "fields")


def test_opensearch_dashboards():
    used = check("opensearch-dashboards.ndjson",
                 template_mapping({"distribution": "opensearch", "version_number": "2.11.0"}))
    eq(used, ["@timestamp", "context.http-method", "context.resource-path", "context.user-agent",
              "user_agent.name", "user_agent.os.name"], "fields")


if __name__ == "__main__":
    tplib.run_tests(globals())
