"""es_mapping - the stand-in's model of dynamic mapping, index templates and flavours.

A real cluster maps every new field name it is sent and refuses documents that
do not fit the mapping it has; this module does the same for es_standin.py, so
the tests fail where a cluster would refuse.  What each rule follows:

- field types picked for new fields, date detection, the .keyword multi-field:
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/dynamic-field-mapping.html
- index.mapping.total_fields.limit (1000; objects and multi-fields count) and
  index.mapping.depth.limit (20; fields at the root have depth 1):
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/mapping-settings-limit.html
- dotted field names are objects:
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/properties.html
  (the "dot notation" section)
- coercion of numeric strings and floats into long fields:
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/coerce.html
- date fields and their formats (default strict_date_optional_time||epoch_millis):
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/date.html
- ip and ignore_malformed:
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/ip.html,
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/ignore-malformed.html
- flattened (Elasticsearch >= 7.3, default distribution; one field whatever
  the keys): https://www.elastic.co/guide/en/elasticsearch/reference/7.10/flattened.html
- flat_object (OpenSearch >= 2.7; one field whatever the keys):
  https://docs.opensearch.org/latest/mappings/supported-field-types/flat-object
- objects with "enabled": false (kept in _source, not mapped):
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/enabled.html
- dynamic templates (match_mapping_type, path_match):
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/dynamic-templates.html
- composable index templates (index_patterns, priority, template.mappings/settings):
  https://www.elastic.co/guide/en/elasticsearch/reference/7.10/index-templates.html

The messages are Elasticsearch 7.10's (OpenSearch 2.x forked from it and
words them the same); Elasticsearch 8 words the total-fields limit without
the index name.  Simplifications, each on the lenient side of nothing our
documents send: numeric detection stays off (the default); date detection
needs at least yyyy-MM-dd; a value that is an object sent to a concrete field
is refused without Jackson's token position; nested, runtime and alias
fields are not modelled.
"""
import fnmatch
import json
import re

TOTAL_FIELDS_LIMIT = 1000
DEPTH_LIMIT = 20


class MappingError(Exception):
    """A refusal: status, Elasticsearch exception type, reason, optional caused_by."""

    def __init__(self, etype, reason, caused_by=None, status=400):
        super().__init__(reason)
        self.status = status
        self.etype = etype
        self.reason = reason
        self.caused_by = caused_by


# ------------------------------------------------------------------ flavours

class Flavor:
    """What the cluster says it is (GET /) and which field types it knows."""

    BASE_TYPES = {"object", "text", "keyword", "long", "integer", "short", "byte", "double",
                  "float", "half_float", "scaled_float", "boolean", "date", "ip", "binary",
                  "nested", "geo_point"}

    def __init__(self, distribution="elasticsearch", number="7.10.2", user_agent=True):
        if distribution not in ("elasticsearch", "opensearch"):
            raise ValueError("distribution is elasticsearch or opensearch")
        self.distribution = distribution
        self.number = number
        self.version = tuple(int(p) for p in re.findall(r"\d+", number)[:3])
        self.user_agent = user_agent        # the user_agent ingest processor exists

    @property
    def opensearch(self):
        return self.distribution == "opensearch"

    def types(self):
        types = set(self.BASE_TYPES)
        if not self.opensearch and self.version >= (7, 3):
            types.add("flattened")
        if self.opensearch and self.version >= (2, 7):
            types.add("flat_object")
        return types

    def typeless(self):
        """Answers carry no "_type" (Elasticsearch 8)."""
        return not self.opensearch and self.version >= (8, 0)

    def has_ilm(self):
        return not self.opensearch

    def has_ism(self):
        return self.opensearch

    def total_fields_message(self, limit, index):
        if not self.opensearch and self.version >= (8, 0):
            return "Limit of total fields [%d] has been exceeded" % limit
        return "Limit of total fields [%d] in index [%s] has been exceeded" % (limit, index)

    def root_info(self, cluster_uuid):
        if self.opensearch:
            version = {"distribution": "opensearch", "number": self.number,
                       "build_type": "tar", "build_hash": "6adc0bf476e1624190564d7fbe4aba00ccf49ad8",
                       "build_date": "2023-10-13T02:55:55.511945994Z", "build_snapshot": False,
                       "lucene_version": "9.7.0", "minimum_wire_compatibility_version": "7.10.0",
                       "minimum_index_compatibility_version": "7.0.0"}
            tagline = "The OpenSearch Project: https://opensearch.org/"
        else:
            version = {"number": self.number,
                       "build_flavor": "default", "build_type": "tar",
                       "build_hash": "747e1cc71def077253878a59143c1f785afa92b9",
                       "build_date": "2021-01-13T00:42:12.435326Z", "build_snapshot": False,
                       "lucene_version": "8.7.0" if self.version < (8,) else "9.7.0",
                       "minimum_wire_compatibility_version": "6.8.0",
                       "minimum_index_compatibility_version": "6.0.0-beta1"}
            tagline = "You Know, for Search"
        return {"name": "standin", "cluster_name": "standin", "cluster_uuid": cluster_uuid,
                "version": version, "tagline": tagline}


# -------------------------------------------------------------- values

# strict_date_optional_time (at least a day), and the second default
# dynamic_date_formats entry "yyyy/MM/dd HH:mm:ss Z||yyyy/MM/dd Z".
_ISO_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
                       r"(T([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d([.,]\d{1,9})?)?)?"
                       r"(Z|[+-]\d{2}(:?\d{2})?)?)?$")
_SLASH_DATE = re.compile(r"^\d{4}/(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])"
                         r"( ([01]\d|2[0-3]):[0-5]\d:[0-5]\d)?( [+-]\d{4})?$")
_EPOCH = re.compile(r"^-?\d{1,19}$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def detect_date(text):
    return bool(_ISO_DATE.match(text) or _SLASH_DATE.match(text))


def _preview(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e16:
        return repr(value)
    return str(value)


def _date_ok(value, fmt):
    formats = (fmt or "strict_date_optional_time||epoch_millis").split("||")
    for f in formats:
        if f == "epoch_millis":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
            if isinstance(value, str) and _EPOCH.match(value):
                return True
        elif f in ("strict_date_optional_time", "date_optional_time", "strict_date_time"):
            if isinstance(value, str) and _ISO_DATE.match(value):
                return True
        elif isinstance(value, str) and _SLASH_DATE.match(value):
            return True
    return False


def _ip_ok(value):
    import ipaddress
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


# -------------------------------------------------------------- the mapping

OPAQUE = ("flattened", "flat_object")      # one field, whatever is below


class Mapping:
    """One index's mapping: the fields it has, how it maps new ones, its limits.

    fields: full dotted path -> {"type", "format", "ignore_malformed",
    "enabled", "dynamic", "multi": [sub-field names]}; objects included,
    the root not.
    """

    def __init__(self, index, flavor, mappings=None, settings=None):
        self.index = index
        self.flavor = flavor
        self.fields = {}
        self.dynamic = True                # the root's "dynamic"
        self.date_detection = True
        self.dynamic_templates = []        # [(name, spec)]
        settings = flatten_settings(settings or {})
        self.total_limit = int(settings.get("index.mapping.total_fields.limit", TOTAL_FIELDS_LIMIT))
        self.depth_limit = int(settings.get("index.mapping.depth.limit", DEPTH_LIMIT))
        self.default_pipeline = settings.get("index.default_pipeline")
        if mappings:
            self._load(mappings)

    # -- explicit mappings (from a template)
    def _load(self, m):
        self.dynamic = m.get("dynamic", True)
        self.date_detection = m.get("date_detection", True)
        for entry in m.get("dynamic_templates", []):
            (name, spec), = entry.items()
            self.dynamic_templates.append((name, spec))
        self._load_props("", m.get("properties", {}))

    def _load_props(self, prefix, props):
        known = self.flavor.types()
        for name, spec in props.items():
            parts = name.split(".")
            for k in range(1, len(parts)):
                path = prefix + ".".join(parts[:k])
                self.fields.setdefault(path, _field("object"))
            path = prefix + name
            ftype = spec.get("type", "object" if "properties" in spec or "enabled" in spec
                             else None)
            if ftype is None:
                ftype = "object"
            if ftype not in known:
                raise MappingError("mapper_parsing_exception",
                                   "No handler for type [%s] declared on field [%s]"
                                   % (ftype, name))
            f = _field(ftype, spec.get("format"), spec.get("ignore_malformed", False),
                       spec.get("enabled", True), spec.get("dynamic"),
                       sorted(spec.get("fields", {})))
            self.fields[path] = f
            if ftype == "object" and "properties" in spec:
                self._load_props(path + ".", spec["properties"])

    def count(self, fields=None):
        fields = self.fields if fields is None else fields
        return sum(1 + len(f["multi"]) for f in fields.values())

    # -- a document
    def apply(self, source, doc_id):
        """Map source (a dict): raises MappingError, or adds its new fields."""
        new = {}
        self._object(source, "", doc_id, new, self.dynamic)
        if not new:
            return
        total = self.count() + self.count(new)
        if total > self.total_limit:
            raise MappingError("illegal_argument_exception",
                               self.flavor.total_fields_message(self.total_limit, self.index))
        for path, f in new.items():
            if f["type"] == "object" and path.count(".") + 2 > self.depth_limit:
                raise MappingError("illegal_argument_exception",
                                   "Limit of mapping depth [%d] in index [%s] has been exceeded "
                                   "due to object field [%s]" % (self.depth_limit, self.index, path))
        self.fields.update(new)

    def _get(self, path, new):
        return self.fields.get(path) or new.get(path)

    def _object(self, obj, prefix, doc_id, new, dynamic):
        for name, value in obj.items():
            self._field(name, value, prefix, doc_id, new, dynamic)

    def _field(self, name, value, prefix, doc_id, new, dynamic):
        if not name.strip():
            raise MappingError("mapper_parsing_exception",
                               "failed to parse", {"type": "illegal_argument_exception",
                                                   "reason": "field name cannot be an empty string"})
        parts = name.split(".")
        if "" in parts:
            raise MappingError("mapper_parsing_exception", "failed to parse",
                               {"type": "illegal_argument_exception",
                                "reason": "object field starting or ending with a [.] makes "
                                          "object resolution ambiguous: [%s]" % name})
        # Dotted names: every part but the last is an object.
        for k, part in enumerate(parts[:-1]):
            path = prefix + part
            f = self._get(path, new)
            if f is None:
                if dynamic is False or dynamic == "false":
                    return
                self._strict(dynamic, path, part)
                f = new[path] = _field("object")
            if f["type"] in OPAQUE or (f["type"] == "object" and not f["enabled"]):
                return                      # it takes anything below it
            if f["type"] != "object":
                raise MappingError("mapper_parsing_exception",
                                   "Could not dynamically add mapping for field [%s]. Existing "
                                   "mapping for [%s] must be of type object but found [%s]."
                                   % (prefix + name, path, f["type"]))
            if f["dynamic"] is not None:
                dynamic = f["dynamic"]
            prefix = path + "."
        self._leaf(parts[-1], prefix + parts[-1], value, doc_id, new, dynamic)

    def _strict(self, dynamic, path, name):
        if dynamic == "strict":
            parent = path.rsplit(".", 1)[0] if "." in path else "_doc"
            raise MappingError("strict_dynamic_mapping_exception",
                               "mapping set to strict, dynamic introduction of [%s] within [%s] "
                               "is not allowed" % (name, parent))

    def _leaf(self, name, path, value, doc_id, new, dynamic):
        if isinstance(value, list):
            for v in value:
                self._leaf(name, path, v, doc_id, new, dynamic)
            return
        if value is None:
            return
        f = self._get(path, new)
        if isinstance(value, dict):
            if f is None:
                if dynamic is False or dynamic == "false":
                    return
                self._strict(dynamic, path, name)
                f = new[path] = self._dynamic_object(path)
            if f["type"] in OPAQUE or (f["type"] == "object" and not f["enabled"]):
                return
            if f["type"] != "object":
                raise MappingError("mapper_parsing_exception",
                                   "failed to parse field [%s] of type [%s] in document with id "
                                   "'%s'. Preview of field's value: '%s'"
                                   % (path, f["type"], doc_id, _java_map(value)),
                                   {"type": "illegal_state_exception",
                                    "reason": "Can't get text on a START_OBJECT"})
            self._object(value, path + ".", doc_id, new,
                         f["dynamic"] if f["dynamic"] is not None else dynamic)
            return
        if f is None:
            if dynamic is False or dynamic == "false":
                return
            self._strict(dynamic, path, name)
            new[path] = self._dynamic_leaf(path, value)
            return
        if f["type"] == "object":
            if not f["enabled"]:
                return
            raise MappingError("mapper_parsing_exception",
                               "object mapping for [%s] tried to parse field [%s] as object, but "
                               "found a concrete value" % (path, name))
        self._check_value(path, f, value, doc_id)

    def _dynamic_object(self, path):
        spec = self._template_for(path, "object")
        if spec is not None:
            return _field(spec.get("type", "object"), spec.get("format"),
                          spec.get("ignore_malformed", False), spec.get("enabled", True))
        return _field("object")

    def _dynamic_leaf(self, path, value):
        if isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int):
            kind = "long"
        elif isinstance(value, float):
            kind = "double"
        else:
            kind = "date" if self.date_detection and detect_date(value) else "string"
        spec = self._template_for(path, kind)
        if spec is not None:
            ftype = spec.get("type", {"string": "text", "double": "float"}.get(kind, kind))
            return _field(ftype, spec.get("format"), spec.get("ignore_malformed", False),
                          multi=sorted(spec.get("fields", {})))
        if kind == "string":
            return _field("text", multi=["keyword"])
        if kind == "double":
            return _field("float")
        return _field(kind)

    def _template_for(self, path, kind):
        for _name, spec in self.dynamic_templates:
            want = spec.get("match_mapping_type", "*")
            if want != "*" and want != kind:
                continue
            if "path_match" in spec and not fnmatch.fnmatchcase(path, spec["path_match"]):
                continue
            if "path_unmatch" in spec and fnmatch.fnmatchcase(path, spec["path_unmatch"]):
                continue
            leaf = path.rsplit(".", 1)[-1]
            if "match" in spec and not fnmatch.fnmatchcase(leaf, spec["match"]):
                continue
            return spec.get("mapping", {})
        return None

    def _check_value(self, path, f, value, doc_id):
        ftype = f["type"]

        def refuse(cause_type, cause):
            if f["ignore_malformed"]:
                return
            raise MappingError("mapper_parsing_exception",
                               "failed to parse field [%s] of type [%s] in document with id "
                               "'%s'. Preview of field's value: '%s'"
                               % (path, ftype, doc_id, _preview(value)),
                               {"type": cause_type, "reason": cause})
        if ftype in ("long", "integer", "short", "byte", "float", "double", "half_float",
                     "scaled_float"):
            if isinstance(value, bool):
                refuse("json_parse_exception", "Current token (VALUE_%s) not numeric, can not "
                       "use numeric value accessors" % ("TRUE" if value else "FALSE"))
            elif isinstance(value, str) and not _NUMBER.match(value):
                refuse("number_format_exception" if ftype not in ("long", "integer", "short",
                                                                  "byte")
                       else "illegal_argument_exception", 'For input string: "%s"' % value)
        elif ftype == "boolean":
            if value not in (True, False, "true", "false", ""):
                refuse("illegal_argument_exception", "Failed to parse value [%s] as only [true] "
                       "or [false] are allowed." % _preview(value))
        elif ftype == "date":
            if not _date_ok(value, f["format"]):
                refuse("illegal_argument_exception",
                       "failed to parse date field [%s] with format [%s]"
                       % (_preview(value), f["format"] or "strict_date_optional_time||epoch_millis"))
        elif ftype == "ip":
            if not isinstance(value, str) or not _ip_ok(value):
                refuse("illegal_argument_exception",
                       "'%s' is not an IP string literal." % _preview(value))
        # text, keyword, flattened, flat_object: any scalar is text.

    # -- GET /{index}/_mapping
    def as_json(self):
        root = {"properties": {}}
        for path in sorted(self.fields, key=lambda p: p.count(".")):
            f = self.fields[path]
            parent = root
            for part in path.split(".")[:-1]:
                parent = parent["properties"].setdefault(part, {"properties": {}})
            out = {} if f["type"] == "object" else {"type": f["type"]}
            if f["format"]:
                out["format"] = f["format"]
            if f["ignore_malformed"]:
                out["ignore_malformed"] = True
            if not f["enabled"]:
                out["enabled"] = False
            if f["multi"]:
                out["fields"] = {m: {"type": "keyword", "ignore_above": 256} for m in f["multi"]}
            if f["type"] == "object" and f["enabled"]:
                out["properties"] = {}
            node = parent["properties"].setdefault(path.rsplit(".", 1)[-1], {})
            node.update(out)
        return root


def _field(ftype, fmt=None, ignore_malformed=False, enabled=True, dynamic=None, multi=()):
    return {"type": ftype, "format": fmt, "ignore_malformed": bool(ignore_malformed),
            "enabled": enabled, "dynamic": dynamic, "multi": list(multi)}


def _java_map(value):
    """Java's Map.toString(), which the preview of an object shows."""
    return "{" + ", ".join("%s=%s" % (k, _java_map(v) if isinstance(v, dict) else _preview(v))
                           for k, v in value.items()) + "}"


def flatten_settings(settings, prefix=""):
    """{"index": {"a": 1}} and {"index.a": 1} both become {"index.a": "1"}; a
    name without "index." gets it, as Elasticsearch normalises settings."""
    out = {}
    for key, value in settings.items():
        name = prefix + key
        if isinstance(value, dict):
            out.update(flatten_settings(value, name + "."))
        else:
            if not name.startswith("index."):
                name = "index." + name
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def nest_settings(flat):
    """The nested form GET answers with: {"index": {"mapping": {...}}}."""
    out = {}
    for name, value in sorted(flat.items()):
        node = out
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


# -------------------------------------------------------------- templates

class Templates:
    """Composable index templates: name -> the body as PUT (validated)."""

    def __init__(self, flavor):
        self.flavor = flavor
        self.by_name = {}

    def put(self, name, body):
        if not isinstance(body, dict) or not isinstance(body.get("index_patterns"), list) \
                or not body["index_patterns"]:
            raise MappingError("action_request_validation_exception",
                               "Validation Failed: 1: index patterns are missing;")
        for key in body:
            if key not in ("index_patterns", "template", "composed_of", "priority", "version",
                           "_meta", "data_stream"):
                raise MappingError("x_content_parse_exception",
                                   "[1:2] [index_template] unknown field [%s]" % key)
        tmpl = body.get("template") or {}
        try:
            Mapping("validate", self.flavor, tmpl.get("mappings"), tmpl.get("settings"))
        except MappingError as e:
            raise MappingError("mapper_parsing_exception",
                               "Failed to parse mapping [_doc]: " + e.reason,
                               {"type": "mapper_parsing_exception", "reason": e.reason})
        self.by_name[name] = json.loads(json.dumps(body))

    def get(self, name):
        return self.by_name.get(name)

    def answer(self, name):
        """GET _index_template/<name>'s body, settings in the nested form."""
        body = json.loads(json.dumps(self.by_name[name]))
        tmpl = body.get("template")
        if tmpl and "settings" in tmpl:
            tmpl["settings"] = nest_settings(flatten_settings(tmpl["settings"]))
        body.setdefault("composed_of", [])
        return {"index_templates": [{"name": name, "index_template": body}]}

    def for_index(self, index):
        """The template a new index gets: the highest priority one matching."""
        best = None
        for name, body in sorted(self.by_name.items()):
            if any(fnmatch.fnmatchcase(index, p) for p in body["index_patterns"]):
                if best is None or body.get("priority", 0) > best.get("priority", 0):
                    best = body
        return best

    def new_mapping(self, index):
        body = self.for_index(index)
        tmpl = (body or {}).get("template") or {}
        return Mapping(index, self.flavor, tmpl.get("mappings"), tmpl.get("settings"))
