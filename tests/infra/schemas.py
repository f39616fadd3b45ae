"""The upstream schemas the real tools validate infra/ against, read from ``../shared/schemas/`` (never copied
into the repo; see its README.md for the source repository and commit of each file):

- ``databricks-bundle.schema.json``: the JSON Schema of ``databricks.yml`` and its ``resources/*.yml``, from
  databricks/cli (``bundle/schema/jsonschema.json``).
- ``kuberay-rayjobs.crd.yaml`` / ``kuberay-rayclusters.crd.yaml``: the KubeRay CustomResourceDefinitions; the API
  server checks a RayJob / RayCluster against ``spec.versions[name=v1].schema.openAPIV3Schema``, an OpenAPI v3
  (Kubernetes "structural") schema, turned into a JSON Schema here by ``openapi_to_jsonschema``.

Each ``*_problems`` function returns one readable line per violation (empty: valid). A test that needs a file
missing from ``../shared/schemas`` is skipped, naming the file. The Ray cluster launcher's schema ships inside
the ``ray`` package and is read there (test_infra.py).
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from jsonschema import validators

REPO = Path(__file__).resolve().parents[2]
BUNDLE_SCHEMA = "databricks-bundle.schema.json"
CRD_FILES = {"RayJob": "kuberay-rayjobs.crd.yaml", "RayCluster": "kuberay-rayclusters.crd.yaml"}
CRD_VERSION = "v1"


def schemas_root() -> Path:
    """``$STRATA_SCHEMAS``, else ``shared/schemas`` beside the repo (searched like the tests' ``data_root``:
    from the repo, the cwd and their parents)."""
    if os.environ.get("STRATA_SCHEMAS"):
        return Path(os.environ["STRATA_SCHEMAS"]).expanduser()
    for base in [REPO, Path.cwd(), *REPO.parents]:
        cand = base.parent / "shared" / "schemas"
        if cand.is_dir():
            return cand
    return REPO.parent / "shared" / "schemas"


def schema_file(name: str, root: Path | None = None) -> Path:
    """The upstream file ``name``; skips the calling test (naming the file) when it is absent."""
    path = (root or schemas_root()) / name
    if not path.is_file():
        pytest.skip(f"upstream schema {name} not found at {path} (place ../shared/schemas or set STRATA_SCHEMAS)")
    return path


def _causes(err: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors behind ``err``: through a oneOf/anyOf, the branch meant for this kind of value (the only one
    whose ``type`` accepts it, e.g. the object branch beside the ``${var.x}`` string patterns), recursively;
    ``err`` itself when no single branch is meant (a value no branch accepts, e.g. "two" for an integer)."""
    branches: dict = {}
    for sub in err.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    meant = [b for b in branches.values() if not any(e.validator == "type" and not e.relative_path for e in b)]
    if len(meant) != 1:
        return [err]
    return [cause for sub in meant[0] for cause in _causes(sub)]


def _problems(validator: jsonschema.protocols.Validator, doc) -> list[str]:
    """One line per violation, at its most specific cause."""
    return [f"{e.json_path}: {e.message[:300]}" for err in validator.iter_errors(doc) for e in _causes(err)]


# -- Databricks bundle -------------------------------------------------------------------------------------
def _pattern_with_unicode_classes(validator, patrn, instance, schema):
    """``pattern`` as the bundle schema means it: its interpolation patterns (``\\$\\{(var(\\.\\p{L}+...``) use
    Unicode property classes, which Python's ``re`` rejects; the ``regex`` module (installed with
    transformers) reads them, and without it ``\\p{L}``/``\\p{N}`` become their ``re`` equivalents."""
    if not validator.is_type(instance, "string"):
        return
    try:
        import regex

        found = regex.search(patrn, instance)
    except ImportError:
        found = re.search(patrn.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d"), instance)
    if not found:
        yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")


@functools.lru_cache(maxsize=None)
def _bundle_validator(path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text())
    # The schema names no `$schema`: validator_for falls back to jsonschema's latest draft (2020-12), which
    # fits how it is written (`$defs`, `$ref` beside annotations). Only `pattern` is replaced (see above).
    base = validators.validator_for(schema)
    base(base.META_SCHEMA).validate(schema)  # a well-formed schema (its "regex" formats are not re's: unchecked)
    return validators.extend(base, {"pattern": _pattern_with_unicode_classes})(schema)


def bundle_problems(doc: dict, root: Path | None = None) -> list[str]:
    """``doc`` (``databricks.yml`` merged with its includes, or one include file alone: the CLI reads each as
    the same root document) against the upstream bundle schema. The schema allows ``${var.x}``,
    ``${bundle.x}``, ... interpolations wherever a typed value goes (its ``oneOf`` of the type and patterns),
    so the whole document validates as written, before the CLI resolves variables. Unknown keys fail
    (``additionalProperties: false``): `databricks bundle validate` warns about them, and a misspelt key does
    nothing on the cluster."""
    return _problems(_bundle_validator(schema_file(BUNDLE_SCHEMA, root)), doc)


# -- KubeRay CRDs ------------------------------------------------------------------------------------------
_DROP = {"description", "default", "format", "example", "nullable"}


def openapi_to_jsonschema(node):
    """A CRD's OpenAPI v3 (structural) schema as a JSON Schema that ``jsonschema`` applies as the API server
    does on ``kubectl apply`` (strict field validation, the default since Kubernetes 1.27):

    - ``x-kubernetes-int-or-string: true``: an integer or a string (the ``pattern`` beside it, e.g. a quantity
      like ``16Gi``, still applies to strings only);
    - ``nullable: true``: ``null`` is accepted too;
    - an object with ``properties`` rejects unknown fields (``additionalProperties: false``) unless it sets
      ``x-kubernetes-preserve-unknown-fields: true`` or its own ``additionalProperties``; an object with neither
      (the root ``metadata``: the API server checks ObjectMeta itself) stays open;
    - ``description``/``default``/``format``/``example`` are dropped (``format`` names like int32 are not
      checked by jsonschema anyway); the other ``x-kubernetes-*`` markers (list/map types) are dropped, except
      ``x-kubernetes-validations`` (CEL rules), which is kept for ``crd_problems`` to flag: they are not
      evaluated offline.

    Everything else (type, properties, required, items, enum, pattern, min/max...) means the same in both."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict = {}
    for key, val in node.items():
        if key == "properties":
            out[key] = {name: openapi_to_jsonschema(sub) for name, sub in val.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(val, dict):
            out[key] = openapi_to_jsonschema(val)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(sub) for sub in val]
        elif key in _DROP or (key.startswith("x-kubernetes-") and key != "x-kubernetes-validations"):
            continue
        else:
            out[key] = val
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _cel_not_evaluated(validator, rules, instance, schema):
    """A field that carries CEL rules (``x-kubernetes-validations``) fails loudly instead of passing
    unchecked: none of infra/ sets one today (in these CRDs: deletionStrategy, managedBy,
    gcsFaultToleranceOptions.backend); whoever adds one adds its rule to kuberay_rules.py and lets it through."""
    for rule in rules:
        yield jsonschema.ValidationError(f"sets a field with a CEL rule not evaluated offline: {rule['rule']}")


_CRDValidator = validators.extend(jsonschema.Draft202012Validator,
                                  {"x-kubernetes-validations": _cel_not_evaluated})


def crd_validator(openapi_schema: dict, api_version: str | None = None, kind: str | None = None):
    """A validator of ``openapi_schema`` (an ``openAPIV3Schema``), pinned to ``apiVersion``/``kind`` when given
    (the API server routes a document to the CRD by them)."""
    schema = openapi_to_jsonschema(openapi_schema)
    props = schema.setdefault("properties", {})
    if api_version:
        props["apiVersion"] = {"const": api_version}
    if kind:
        props["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), *(["apiVersion", "kind"] if kind else [])})
    return _CRDValidator(schema)


def _load_yaml(path: Path):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are ~1 MB each: 2 s with libyaml, 9 without
    return yaml.load(path.read_text(), Loader=loader)


@functools.lru_cache(maxsize=None)
def _kind_validator(path: Path):
    crd = _load_yaml(path)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == CRD_VERSION]
    return crd_validator(version["schema"]["openAPIV3Schema"], f"{crd['spec']['group']}/{CRD_VERSION}",
                         crd["spec"]["names"]["kind"])


def crd_problems(doc: dict, root: Path | None = None) -> list[str]:
    """A RayJob or RayCluster manifest against its upstream CRD (version v1)."""
    if doc.get("kind") not in CRD_FILES:
        return [f"$.kind: {doc.get('kind')!r} is none of {sorted(CRD_FILES)}"]
    return _problems(_kind_validator(schema_file(CRD_FILES[doc["kind"]], root)), doc)
