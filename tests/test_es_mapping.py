#!/usr/bin/python3
"""The stand-in's dynamic-mapping model (es_mapping.py): what it maps, what it
refuses and the exact error bodies, directly and through the stand-in's HTTP
API (_bulk items, templates, policies, pipelines, GET / of each flavour)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq  # noqa: E402
from es_mapping import Flavor, Mapping, MappingError, Templates  # noqa: E402
from es_standin import Standin  # noqa: E402

ES7 = Flavor("elasticsearch", "7.10.2")
ES8 = Flavor("elasticsearch", "8.11.0")
OS2 = Flavor("opensearch", "2.11.0")
OS26 = Flavor("opensearch", "2.6.0")


def refusal(mapping, doc, doc_id="1"):
    """(type, reason, caused_by) of the refusal of doc, or None when it is mapped."""
    try:
        mapping.apply(doc, doc_id)
    except MappingError as e:
        return (e.etype, e.reason, e.caused_by)
    return None


def test_dynamic_types_and_count():
    m = Mapping("events", ES7)
    eq(refusal(m, {"s": "x", "n": 1, "f": 1.5, "b": True, "z": None, "e": [],
                   "d": "2025-11-26T19:40:00.123Z", "d2": "2015/09/02",
                   "o": {"k": "v"}}), None, "mapped")
    eq({p: (f["type"], f["multi"]) for p, f in m.fields.items()},
       {"s": ("text", ["keyword"]), "n": ("long", []), "f": ("float", []),
        "b": ("boolean", []), "d": ("date", []), "d2": ("date", []),
        "o": ("object", []), "o.k": ("text", ["keyword"])}, "types")
    # s, s.keyword, n, f, b, d, d2, o, o.k, o.k.keyword
    eq(m.count(), 10, "objects and multi-fields count")


def test_total_fields_limit_exact():
    m = Mapping("events", ES7)
    # params, params.querystring: 2 fields; each string name 2 more.
    for i in range(499):
        eq(refusal(m, {"params": {"querystring": {"q%d" % i: "v"}}}, "d%d" % i), None, "name %d" % i)
    eq(m.count(), 2 + 2 * 499, "1000 fields")
    eq(refusal(m, {"params": {"querystring": {"q0": "again"}}}), None, "a known name")
    eq(refusal(m, {"params": {"querystring": {"new": 1}}})[1],
       "Limit of total fields [1000] in index [events] has been exceeded", "one more: 1001")


def test_total_fields_limit_message():
    m = Mapping("events", ES7)
    for i in range(499):
        m.apply({"q%d" % i: "v"}, "x")
    eq(m.count(), 998, "998 fields")
    eq(refusal(m, {"n1": 1, "n2": 2}), None, "two longs: 1000")
    eq(refusal(m, {"n3": 3}), ("illegal_argument_exception",
                               "Limit of total fields [1000] in index [events] has been exceeded",
                               None), "1001")
    m8 = Mapping("events", ES8)
    for i in range(500):
        m8.apply({"q%d" % i: "v"}, "x")
    eq(refusal(m8, {"n": 1}), ("illegal_argument_exception",
                               "Limit of total fields [1000] has been exceeded", None), "ES 8")


def test_depth_limit():
    m = Mapping("events", ES7)
    # {"a":{"a":...1}} with k keys holds k-1 object fields; the deepest
    # object with n dots in its path has depth n + 2.
    doc19 = json.loads('{"a":' * 20 + "1" + "}" * 20)
    eq(refusal(m, doc19), None, "19 objects: depth 20")
    path = ".".join(["b"] * 20)
    doc20 = json.loads('{"b":' * 21 + "1" + "}" * 21)
    eq(refusal(Mapping("events", ES7), doc20),
       ("illegal_argument_exception", "Limit of mapping depth [20] in index [events] has been "
        "exceeded due to object field [%s]" % path, None), "20 objects")
    eq(refusal(Mapping("events", ES7), {".".join(["c"] * 21): 1})[0],
       "illegal_argument_exception", "dotted names are objects too")


def test_dotted_names_and_object_conflicts():
    m = Mapping("events", ES7)
    eq(refusal(m, {"q": {"a": "1"}}), None, "?a=1")
    eq(refusal(m, {"q": {"a.b": "2"}}),
       ("mapper_parsing_exception", "Could not dynamically add mapping for field [q.a.b]. "
        "Existing mapping for [q.a] must be of type object but found [text].", None), "?a.b=2")
    m = Mapping("events", ES7)
    eq(refusal(m, {"q": {"a.b": "2"}}), None, "?a.b=2 first")
    eq(m.fields["q.a"]["type"], "object", "a.b expanded")
    eq(refusal(m, {"q": {"a": "1"}}, "id7"),
       ("mapper_parsing_exception", "object mapping for [q.a] tried to parse field [a] as "
        "object, but found a concrete value", None), "then ?a=1")
    eq(refusal(m, {"q": {"a": {"b": "3"}}}), None, "the object form of a.b")
    eq(refusal(m, {"x..y": 1}), ("mapper_parsing_exception", "failed to parse",
                                 {"type": "illegal_argument_exception",
                                  "reason": "object field starting or ending with a [.] makes "
                                            "object resolution ambiguous: [x..y]"}), "a..b")


def test_value_conflicts():
    m = Mapping("events", ES7)
    m.apply({"v": 1, "f": 1.5, "b": True, "d": "2025-01-02"}, "0")
    eq(refusal(m, {"v": "x"}, "id1"),
       ("mapper_parsing_exception", "failed to parse field [v] of type [long] in document with "
        "id 'id1'. Preview of field's value: 'x'",
        {"type": "illegal_argument_exception", "reason": 'For input string: "x"'}), "long 'x'")
    eq(refusal(m, {"v": "12", "f": 3}), None, "numeric string and int coerced")
    eq(refusal(m, {"v": 2.5}), None, "a float into a long is coerced")
    eq(refusal(m, {"b": "yes"}, "id2"),
       ("mapper_parsing_exception", "failed to parse field [b] of type [boolean] in document "
        "with id 'id2'. Preview of field's value: 'yes'",
        {"type": "illegal_argument_exception",
         "reason": "Failed to parse value [yes] as only [true] or [false] are allowed."}),
       "boolean")
    eq(refusal(m, {"d": "soon"}, "id3"),
       ("mapper_parsing_exception", "failed to parse field [d] of type [date] in document with "
        "id 'id3'. Preview of field's value: 'soon'",
        {"type": "illegal_argument_exception", "reason": "failed to parse date field [soon] "
         "with format [strict_date_optional_time||epoch_millis]"}), "date detected, then text")
    eq(refusal(m, {"d": 1764186000123}), None, "epoch_millis into a date")
    eq(refusal(m, {"n": [1, True]})[1].startswith("failed to parse field [n] of type [long]"),
       True, "an array takes its first value's type")
    eq(refusal(m, {"v": True}, "x")[2]["type"], "json_parse_exception", "true into a long")


def test_refused_document_adds_nothing():
    m = Mapping("events", ES7)
    m.apply({"v": 1}, "0")
    eq(refusal(m, {"new": "x", "v": "x"})[0], "mapper_parsing_exception", "refused")
    eq(sorted(m.fields), ["v"], "no field of the refused document")


TEMPLATE = {
    "index_patterns": ["events*"], "priority": 200,
    "template": {
        "settings": {"index": {"mapping": {"total_fields": {"limit": "1000"}}}},
        "mappings": {
            "dynamic_templates": [{"strings": {"match_mapping_type": "string",
                                               "mapping": {"type": "keyword"}}}],
            "properties": {
                "@timestamp": {"type": "date"},
                "date": {"type": "date", "format": "epoch_millis"},
                "context": {"properties": {"source-ip": {"type": "ip",
                                                         "ignore_malformed": True}}},
                "params": {"properties": {"querystring": {"type": "flattened"}}},
                "body-json": {"type": "flattened"}}}}}


def test_template_flattened_ip_and_date_format():
    t = Templates(ES7)
    t.put("trackpixel", TEMPLATE)
    m = t.new_mapping("events-2025.11.26")
    eq(refusal(m, {"params": {"querystring": {"q%d" % i: "v" for i in range(3000)}}}), None,
       "3000 names in a flattened field")
    eq(refusal(m, {"params": {"querystring": {"a": "1", "a.b": "2"}}}), None, "a and a.b")
    eq(refusal(m, {"body-json": {"v": 1}}), None, "v a number")
    eq(refusal(m, {"body-json": {"v": "x"}}), None, "then a string")
    eq(refusal(m, {"context": {"source-ip": "not an ip", "x": "y"}}), None, "ignore_malformed")
    eq(m.fields["context.x"]["type"], "keyword", "dynamic template: keyword")
    eq(refusal(m, {"date": 1764186000123}), None, "epoch_millis")
    eq(refusal(m, {"date": "2025-11-26"}, "i")[2]["reason"],
       "failed to parse date field [2025-11-26] with format [epoch_millis]", "format")
    eq(t.new_mapping("other").fields, {}, "an index the pattern does not cover")


def test_template_types_per_flavour():
    body = json.loads(json.dumps(TEMPLATE))
    try:
        Templates(OS2).put("t", body)
        raise AssertionError("flattened accepted by OpenSearch")
    except MappingError as e:
        eq((e.etype, e.reason), ("mapper_parsing_exception", "Failed to parse mapping [_doc]: "
                                 "No handler for type [flattened] declared on field [querystring]"),
           "flattened on OpenSearch")
    flat = json.loads(json.dumps(TEMPLATE).replace('"flattened"', '"flat_object"'))
    Templates(OS2).put("t", flat)
    try:
        Templates(OS26).put("t", flat)
        raise AssertionError("flat_object accepted by OpenSearch 2.6")
    except MappingError as e:
        eq(e.reason.endswith("No handler for type [flat_object] declared on field [querystring]"),
           True, "flat_object before 2.7")
    try:
        Templates(ES7).put("t", flat)
        raise AssertionError("flat_object accepted by Elasticsearch")
    except MappingError as e:
        eq(e.etype, "mapper_parsing_exception", "flat_object on Elasticsearch")


# ---------------------------------------------------------------- over HTTP

def post_bulk(es, pairs):
    body = b"".join(json.dumps(a).encode() + b"\n" + json.dumps(d).encode() + b"\n"
                    for a, d in pairs)
    r = es.request("POST", "/_bulk", body, headers={"Content-Type": "application/x-ndjson"})
    eq(r.status, 200, "bulk status")
    return r.json()


def test_bulk_items_in_elasticsearch_format():
    with Standin() as es:
        out = post_bulk(es, [({"create": {"_index": "events", "_id": "1"}}, {"v": 1}),
                             ({"create": {"_index": "events", "_id": "2"}}, {"v": "x"}),
                             ({"create": {"_index": "events", "_id": "3"}}, {"v": {"a": 1}})])
        eq(out["errors"], True, "errors")
        eq(out["items"][1], {"create": {
            "_index": "events", "_type": "_doc", "_id": "2", "status": 400,
            "error": {"type": "mapper_parsing_exception",
                      "reason": "failed to parse field [v] of type [long] in document with id "
                                "'2'. Preview of field's value: 'x'",
                      "caused_by": {"type": "illegal_argument_exception",
                                    "reason": 'For input string: "x"'}}}}, "item 2")
        eq(out["items"][2]["create"]["error"]["reason"],
           "failed to parse field [v] of type [long] in document with id '3'. Preview of "
           "field's value: '{a=1}'", "item 3")
        pairs = [({"create": {"_index": "wide", "_id": "w%d" % i}}, {"f%d" % i: "v"})
                 for i in range(501)]
        out = post_bulk(es, pairs)
        eq([it["create"]["status"] for it in out["items"]].count(201), 500, "500 accepted")
        eq(out["items"][500], {"create": {
            "_index": "wide", "_type": "_doc", "_id": "w500", "status": 400,
            "error": {"type": "illegal_argument_exception",
                      "reason": "Limit of total fields [1000] in index [wide] has been "
                                "exceeded"}}}, "the 501st name")
        r = es.request("GET", "/events/_mapping")
        eq(r.json(), {"events": {"mappings": {"properties": {"v": {"type": "long"}}}}},
           "GET _mapping")


def test_apis_per_flavour():
    with Standin() as es:
        info = es.request("GET", "/").json()
        eq((info["version"]["number"], info["version"].get("distribution")),
           ("7.10.2", None), "Elasticsearch 7.10")
        r = es.request("GET", "/_index_template/trackpixel")
        eq((r.status, r.json()["error"]["type"]), (404, "resource_not_found_exception"), "none")
        put = es.request("PUT", "/_index_template/trackpixel", json.dumps(TEMPLATE).encode(),
                         headers={"Content-Type": "application/json"})
        eq((put.status, put.json()), (200, {"acknowledged": True}), "PUT template")
        got = es.request("GET", "/_index_template/trackpixel").json()
        eq(got["index_templates"][0]["index_template"]["template"]["settings"],
           {"index": {"mapping": {"total_fields": {"limit": "1000"}}}}, "nested settings")
        ilm = {"policy": {"phases": {"delete": {"min_age": "30d",
                                                "actions": {"delete": {}}}}}}
        eq(es.request("PUT", "/_ilm/policy/tp", json.dumps(ilm).encode(),
                      headers={"Content-Type": "application/json"}).status, 200, "ILM")
        eq(es.request("GET", "/_ilm/policy/tp").json()["tp"]["policy"], ilm["policy"], "ILM GET")
        eq(es.request("GET", "/_plugins/_ism/policies/tp").status, 400, "no ISM on ES")
    with Standin(distribution="opensearch", version_number="2.11.0", user_agent=False) as es:
        info = es.request("GET", "/").json()
        eq((info["version"]["distribution"], info["version"]["number"]),
           ("opensearch", "2.11.0"), "OpenSearch")
        eq(es.request("GET", "/_ilm/policy/tp").status, 400, "no ILM on OpenSearch")
        ism = json.dumps({"policy": {"description": "d", "default_state": "hot",
                                     "states": []}}).encode()
        hdr = {"Content-Type": "application/json"}
        eq(es.request("PUT", "/_plugins/_ism/policies/tp", ism, headers=hdr).status, 201, "ISM")
        r = es.request("PUT", "/_plugins/_ism/policies/tp", ism, headers=hdr)
        eq((r.status, r.json()["error"]["type"]), (409, "version_conflict_engine_exception"),
           "ISM update needs the sequence number")
        got = es.request("GET", "/_plugins/_ism/policies/tp").json()
        r = es.request("PUT", "/_plugins/_ism/policies/tp?if_seq_no=%d&if_primary_term=%d"
                       % (got["_seq_no"], got["_primary_term"]), ism, headers=hdr)
        eq((r.status, r.json()["_version"]), (200, 2), "ISM update")
        pipe = json.dumps({"processors": [{"user_agent": {"field": "context.user-agent"}}]})
        r = es.request("PUT", "/_ingest/pipeline/ua", pipe.encode(), headers=hdr)
        eq((r.status, r.json()["error"]["reason"]),
           (400, "No processor type exists with name [user_agent]"), "no user_agent")


def test_elasticsearch_8_answers():
    with Standin(version_number="8.11.0") as es:
        eq(es.request("GET", "/").json()["version"]["number"], "8.11.0", "GET /")
        out = post_bulk(es, [({"create": {"_index": "ev", "_id": "1"}}, {"v": 1}),
                             ({"create": {"_index": "ev", "_id": "2"}}, {"v": "x"})])
        eq(out["items"][1], {"create": {
            "_index": "ev", "_id": "2", "status": 400,
            "error": {"type": "mapper_parsing_exception",
                      "reason": "failed to parse field [v] of type [long] in document with id "
                                "'2'. Preview of field's value: 'x'",
                      "caused_by": {"type": "illegal_argument_exception",
                                    "reason": 'For input string: "x"'}}}}, "no _type")
        r = es.request("PUT", "/ev/_create/3", b'{"w":1}',
                       headers={"Content-Type": "application/json"})
        eq((r.status, "_type" in r.json()), (201, False), "create")


def test_default_pipeline_runs():
    hdr = {"Content-Type": "application/json"}
    with Standin() as es:
        pipe = json.dumps({"processors": [{"user_agent": {"field": "context.user-agent",
                                                          "ignore_missing": True}}]})
        eq(es.request("PUT", "/_ingest/pipeline/ua", pipe.encode(), headers=hdr).status, 200,
           "pipeline")
        tmpl = {"index_patterns": ["ev*"], "template": {"settings": {"index.default_pipeline":
                                                                     "ua"}}}
        es.request("PUT", "/_index_template/t", json.dumps(tmpl).encode(), headers=hdr)
        r = es.request("PUT", "/ev/_create/1", json.dumps(
            {"context": {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}}).encode(),
            headers=hdr)
        eq(r.status, 201, "created")
        eq(es.docs()[0]["source"]["user_agent"],
           {"original": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "name": "Firefox",
            "os": {"name": "Linux"}, "device": {"name": "Other"}}, "parsed")


if __name__ == "__main__":
    tplib.run_tests(globals())
