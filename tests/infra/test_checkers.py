"""The checkers test_infra.py applies to infra/, on hand-written cases: each accepts what it must and rejects
what the real tool rejects (the OpenAPI -> JSON Schema conversion of the KubeRay CRDs, the KubeRay operator's Go
rules, the skip when ../shared/schemas is absent)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _helper(name: str):
    spec = importlib.util.spec_from_file_location(f"strata_infra_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


schemas = _helper("schemas")
rules = _helper("kuberay_rules")


# -- openapi_to_jsonschema -----------------------------------------------------------------------------------
# A CRD-shaped OpenAPI v3 schema with each quirk the converter handles.
OPENAPI = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["entrypoint"],
            "properties": {
                "entrypoint": {"type": "string", "description": "dropped"},
                "replicas": {"type": "integer", "format": "int32", "default": 1},
                "cpu": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True,
                        "pattern": r"^[0-9]+m?$"},
                "port": {"x-kubernetes-int-or-string": True},  # int-or-string without the anyOf beside it
                "since": {"type": "string", "format": "date-time", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                         "properties": {"known": {"type": "string"}}},
                "params": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {
                    "type": "object", "properties": {"name": {"type": "string"}}}},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "guarded": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]},
            },
        },
    },
}
GOOD = {"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "n", "anything": {"goes": 1}},
        "spec": {"entrypoint": "python x.py", "replicas": 2, "cpu": "500m", "port": 8080, "since": None,
                 "free": {"known": "k", "unknown": [1, 2]}, "params": {"a": "b"}, "items": [{"name": "i"}],
                 "mode": "A"}}


def _check(doc: dict) -> list[str]:
    v = schemas.crd_validator(OPENAPI, "x.io/v1", "Thing")
    return [f"{e.json_path}: {e.message}" for e in v.iter_errors(doc)]


def test_converted_schema_accepts_a_good_document():
    assert _check(GOOD) == []
    assert _check({**GOOD, "spec": {**GOOD["spec"], "cpu": 2, "port": "http"}}) == []  # int or string


@pytest.mark.parametrize("field,value,expect", [
    ("entrypoint", 5, "5 is not of type 'string'"),
    ("bogus", 1, "'bogus' was unexpected"),  # unknown field under spec: strict field validation
    ("replicas", "2", "'2' is not of type 'integer'"),
    ("cpu", 1.5, "1.5 is not valid under any of the given schemas"),
    ("cpu", "half", "'half' does not match"),  # the pattern still applies to the string branch
    ("port", [80], "is not valid under any of the given schemas"),
    ("since", 3, "3 is not valid under any of the given schemas"),
    ("params", {"a": 1}, "1 is not of type 'string'"),
    ("items", [{"name": "i", "nmae": "typo"}], "'nmae' was unexpected"),
    ("mode", "C", "'C' is not one of ['A', 'B']"),
    ("guarded", "x", "CEL rule not evaluated offline: self == oldSelf"),
])
def test_converted_schema_rejects_a_hand_written_bad_field(field, value, expect):
    problems = _check({**GOOD, "spec": {**GOOD["spec"], field: value}})
    assert len(problems) == 1 and expect in problems[0], problems


def test_converted_schema_pins_api_version_and_kind_and_requires_fields():
    assert any("'x.io/v1' was expected" in p for p in _check({**GOOD, "apiVersion": "x.io/v2"}))
    spec = {k: v for k, v in GOOD["spec"].items() if k != "entrypoint"}
    assert _check({**GOOD, "spec": spec}) == ["$.spec: 'entrypoint' is a required property"]


def test_missing_upstream_schema_skips_naming_the_file(tmp_path):
    with pytest.raises(pytest.skip.Exception, match=r"kuberay-rayjobs\.crd\.yaml not found"):
        schemas.crd_problems({"kind": "RayJob"}, root=tmp_path)
    with pytest.raises(pytest.skip.Exception, match=r"databricks-bundle\.schema\.json not found"):
        schemas.bundle_problems({}, root=tmp_path)


def test_unknown_kind_is_a_problem_not_a_pass():
    assert schemas.crd_problems({"kind": "RayService"}) == ["$.kind: 'RayService' is none of ['RayCluster', 'RayJob']"]


# -- KubeRay operator rules (kuberay_rules.py) ---------------------------------------------------------------
def _pod(**extra) -> dict:
    return {"spec": {"containers": [{"name": "ray", "image": "ray"}], **extra}}


def _cluster(**extra) -> dict:
    spec = {"rayVersion": "2.60.0", "headGroupSpec": {"rayStartParams": {}, "template": _pod()},
            "workerGroupSpecs": [{"groupName": "gpu", "minReplicas": 0, "maxReplicas": 2, "replicas": 1,
                                  "rayStartParams": {}, "template": _pod()}]}
    spec.update(extra)
    return spec


def _job(name: str = "strata-job", **spec) -> dict:
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name},
            "spec": {"entrypoint": "python x.py", **spec}}


def test_rules_accept_the_two_ways_of_running_a_rayjob():
    assert rules.problems(_job(rayClusterSpec=_cluster(), shutdownAfterJobFinishes=True, backoffLimit=2,
                               ttlSecondsAfterFinished=60)) == []
    assert rules.problems(_job(clusterSelector={"ray.io/cluster": "strata"}, backoffLimit=0)) == []


@pytest.mark.parametrize("doc,expect", [
    (_job(), "one of RayClusterSpec or ClusterSelector must be set"),
    (_job(clusterSelector={"ray.io/cluster": "strata"}, backoffLimit=1),
     "BackoffLimit is incompatible with ClusterSelector mode"),
    (_job(clusterSelector={"app": "strata"}), "cluster name in ClusterSelector should not be empty"),
    (_job(clusterSelector={"ray.io/cluster": "strata"}, submissionMode="SidecarMode"),
     "ClusterSelector is not supported in SidecarMode"),
    (_job(rayClusterSpec=_cluster(), submissionMode="InteractiveMode", backoffLimit=1),
     "BackoffLimit is incompatible with InteractiveMode"),
    (_job(rayClusterSpec=_cluster(), submissionMode="SidecarMode", submitterConfig={}),
     "SidecarMode doesn't support SubmitterConfig"),
    (_job(rayClusterSpec=_cluster(), suspend=True), "shutdownAfterJobFinishes set to false is not allowed"),
    (_job(rayClusterSpec=_cluster(), backoffLimit=-1), "backoffLimit must be a positive integer"),
    (_job(rayClusterSpec=_cluster(), preRunningDeadlineSeconds=0), "preRunningDeadlineSeconds must be a positive"),
    (_job(rayClusterSpec=_cluster(), runtimeEnvYAML="env_vars: [unclosed"), "failed to unmarshal RuntimeEnvYAML"),
    (_job("a" * 48, rayClusterSpec=_cluster()), "RayJob name should be no more than 47 characters"),
    (_job(rayClusterSpec=_cluster(upgradeStrategy={"type": "Recreate"})),
     "upgradeStrategy cannot be set when RayCluster is created by RayJob"),
    (_job(rayClusterSpec=_cluster(), deletionStrategy={"onSuccess": {"policy": "DeleteSelf"}}),
     "spec.deletionStrategy: its KubeRay rules are not checked offline"),
], ids=["no-cluster", "selector-backoff", "selector-empty", "selector-sidecar", "interactive-backoff",
        "sidecar-submitter-config", "suspend-no-shutdown", "negative-backoff", "pre-running-deadline",
        "runtime-env-yaml", "long-name", "upgrade-strategy", "unchecked-field"])
def test_rayjob_rules_reject_hand_written_cases(doc, expect):
    problems = rules.problems(doc)
    assert len(problems) == 1 and expect in problems[0], problems


def _raycluster(name: str = "strata", **spec) -> dict:
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": name}, "spec": _cluster(**spec)}


def _worker(doc: dict, **extra) -> dict:
    doc["spec"]["workerGroupSpecs"][0].update(extra)
    return doc


def _head_env(doc: dict, name: str, value: str) -> dict:
    doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] = [{"name": name, "value": value}]
    return doc


@pytest.mark.parametrize("doc,expect", [
    (_raycluster(headGroupSpec={"template": {"spec": {"containers": []}}}),
     "headGroupSpec should have at least one container"),
    (_worker(_raycluster(), minReplicas=None), "must set both minReplicas and maxReplicas"),
    (_worker(_raycluster(), minReplicas=-1), "has negative minReplicas -1"),
    (_worker(_raycluster(), rayStartParams={"num-gpus": "1"}, resources={"GPU": "1"}),
     "should not be set in both rayStartParams and Resources for gpu group"),
    (_worker(_raycluster(), rayStartParams={"labels": "a=b"}), "rayStartParams['labels'] is not supported"),
    (_worker(_raycluster(), labels={"bad key!": "v"}), "invalid label key for gpu group"),
    (_worker(_raycluster(), idleTimeoutSeconds=60), "idleTimeoutSeconds is set, but autoscaler v2 is not enabled"),
    (_worker(_raycluster(enableInTreeAutoscaling=True, autoscalerOptions={"version": "v2"}), priority=1,
             ), None),  # priority needs Ray >= 2.56 and autoscaler v2: both given, accepted
    (_head_env(_raycluster(), "RAY_REDIS_ADDRESS", "redis:6379"), "RAY_REDIS_ADDRESS is set"),
    (_head_env(_raycluster(), "RAY_enable_autoscaler_v2", "true"), "cannot be set to 'true'"),
    (_raycluster(enableInTreeAutoscaling=True, autoscalerOptions={"version": "v2"},
                 headGroupSpec={"rayStartParams": {}, "template": _pod(restartPolicy="Always")}),
     "restartPolicy for head Pod should be Never or unset"),
    (_raycluster(autoscalerOptions={"idleTimeoutSeconds": -5}), "idleTimeoutSeconds must be non-negative"),
    (_raycluster(networkPolicy={}), "requires the RayClusterNetworkPolicy feature gate"),
    (_raycluster(rayVersion="2.50.0", authOptions={"mode": "token"}), "minimum Ray version is 2.52.0"),
    (_raycluster(upgradeStrategy={"type": "Rolling"}), "Spec.UpgradeStrategy.Type value Rolling is invalid"),
    (_raycluster("a" * 54), "RayCluster name should be no more than 53 characters"),
], ids=["no-head-container", "no-min-replicas", "negative-min", "resources-twice", "start-param-labels",
        "bad-label-key", "idle-timeout-v1", "priority-ok", "redis-address", "v2-env-no-autoscaling",
        "v2-restart-policy", "negative-idle", "network-policy-gate", "auth-old-ray", "upgrade-type", "long-name"])
def test_raycluster_rules_reject_hand_written_cases(doc, expect):
    problems = rules.problems(doc)
    if expect is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expect in problems[0], problems
