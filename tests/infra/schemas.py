"""Offline JSON schemas for the infra files, written from the documented fields (no network, no vendor CLI):

- Databricks Asset Bundle (bundle, include, sync, artifacts, variables, targets; resources.jobs with tasks,
  depends_on, job_clusters, schedule): the subset of the bundle schema (`databricks bundle schema`) that these
  files use, strict about unknown keys where a typo would silently do nothing.
- KubeRay ray.io/v1 RayCluster / RayJob: the CRD's required fields (headGroupSpec.template, workerGroupSpecs
  groupName/template, RayJob entrypoint + rayClusterSpec or clusterSelector) and pod-template basics.

The Ray cluster launcher config is checked against the schema Ray itself ships (ray/autoscaler/ray-schema.json).
"""

from __future__ import annotations

_STR = {"type": "string", "minLength": 1}
_STR_LIST = {"type": "array", "items": {"type": "string"}}
_VAR_OR_INT = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\$\{var\.[a-z_]+\}$"}]}

_NEW_CLUSTER = {
    "type": "object",
    "required": ["spark_version", "node_type_id", "num_workers"],
    "additionalProperties": False,
    "properties": {
        "spark_version": _STR, "node_type_id": _STR, "num_workers": _VAR_OR_INT,
        "data_security_mode": {"enum": ["SINGLE_USER", "USER_ISOLATION", "NONE"]},
        "spark_conf": {"type": "object", "additionalProperties": {"type": "string"}},
        "spark_env_vars": {"type": "object", "additionalProperties": {"type": "string"}},
        "custom_tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "autoscale": {"type": "object", "required": ["min_workers", "max_workers"]},
        "policy_id": _STR, "driver_node_type_id": _STR,
    },
}

_TASK = {
    "type": "object",
    "required": ["task_key"],
    "additionalProperties": False,
    "properties": {
        "task_key": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,100}$"},
        "description": {"type": "string"},
        "depends_on": {"type": "array", "items": {"type": "object", "required": ["task_key"],
                                                    "additionalProperties": False,
                                                    "properties": {"task_key": _STR, "outcome": _STR}}},
        "job_cluster_key": _STR,
        "existing_cluster_id": _STR,
        "max_retries": {"type": "integer", "minimum": -1},
        "min_retry_interval_millis": {"type": "integer", "minimum": 0},
        "retry_on_timeout": {"type": "boolean"},
        "timeout_seconds": {"type": "integer", "minimum": 0},
        "spark_python_task": {
            "type": "object", "required": ["python_file"], "additionalProperties": False,
            "properties": {"python_file": _STR, "parameters": _STR_LIST, "source": {"enum": ["WORKSPACE", "GIT"]}},
        },
        "libraries": {"type": "array", "items": {"type": "object", "minProperties": 1, "maxProperties": 1,
                                                   "properties": {"whl": _STR, "pypi": {"type": "object"},
                                                                  "jar": _STR, "requirements": _STR},
                                                   "additionalProperties": False}},
    },
    "oneOf": [{"required": ["spark_python_task"]}],
}

_JOB = {
    "type": "object",
    "required": ["name", "tasks"],
    "additionalProperties": False,
    "properties": {
        "name": _STR,
        "description": {"type": "string"},
        "max_concurrent_runs": {"type": "integer", "minimum": 1},
        "timeout_seconds": {"type": "integer", "minimum": 0},
        "schedule": {
            "type": "object", "required": ["quartz_cron_expression", "timezone_id"], "additionalProperties": False,
            "properties": {"quartz_cron_expression": _STR, "timezone_id": _STR,
                           "pause_status": {"enum": ["PAUSED", "UNPAUSED"]}},
        },
        "parameters": {"type": "array", "items": {"type": "object", "required": ["name", "default"],
                                                    "additionalProperties": False,
                                                    "properties": {"name": _STR, "default": {"type": "string"}}}},
        "job_clusters": {"type": "array", "items": {
            "type": "object", "required": ["job_cluster_key", "new_cluster"], "additionalProperties": False,
            "properties": {"job_cluster_key": _STR, "new_cluster": _NEW_CLUSTER}}},
        "tasks": {"type": "array", "minItems": 1, "items": _TASK},
        "email_notifications": {"type": "object"},
        "tags": {"type": "object"},
    },
}

DATABRICKS_BUNDLE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["bundle", "targets", "resources"],
    "additionalProperties": False,
    "properties": {
        "bundle": {"type": "object", "required": ["name"], "properties": {"name": _STR}},
        "include": _STR_LIST,
        "sync": {"type": "object", "additionalProperties": False,
                 "properties": {"paths": _STR_LIST, "include": _STR_LIST, "exclude": _STR_LIST}},
        "artifacts": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["type", "path"], "additionalProperties": False,
            "properties": {"type": {"enum": ["whl", "jar"]}, "path": _STR, "build": _STR}}},
        "variables": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["description"], "additionalProperties": False,
            "properties": {"description": _STR, "default": {"type": ["string", "integer", "boolean"]}}}},
        "targets": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "mode": {"enum": ["development", "production"]},
                "default": {"type": "boolean"},
                "workspace": {"type": "object", "properties": {"host": _STR, "root_path": _STR}},
                "variables": {"type": "object"},
                "run_as": {"type": "object"},
            }}},
        "resources": {"type": "object", "additionalProperties": False, "required": ["jobs"],
                      "properties": {"jobs": {"type": "object", "additionalProperties": _JOB}}},
    },
}

_DNS1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = {"anyOf": [{"type": "string", "pattern": r"^[0-9.]+([mkMGTP]i?)?$"}, {"type": "number"}]}
_CONTAINER = {
    "type": "object", "required": ["name", "image"],
    "properties": {
        "name": {"type": "string", "pattern": _DNS1123}, "image": _STR,
        "resources": {"type": "object", "additionalProperties": False,
                      "properties": {"requests": {"type": "object", "additionalProperties": _QUANTITY},
                                     "limits": {"type": "object", "additionalProperties": _QUANTITY}}},
        "env": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "ports": {"type": "array", "items": {"type": "object", "required": ["containerPort"]}},
        "volumeMounts": {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"]}},
    },
}
_POD_TEMPLATE = {
    "type": "object", "required": ["spec"],
    "properties": {"spec": {"type": "object", "required": ["containers"], "properties": {
        "containers": {"type": "array", "minItems": 1, "items": _CONTAINER},
        "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "tolerations": {"type": "array"},
    }}},
}
_RAY_START_PARAMS = {"type": "object", "additionalProperties": {"type": "string"}}  # CRD: map[string]string
_CLUSTER_SPEC = {
    "type": "object", "required": ["headGroupSpec"],
    "properties": {
        "rayVersion": {"type": "string"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": {"type": "object"},
        "headGroupSpec": {"type": "object", "required": ["template"], "properties": {
            "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
            "rayStartParams": _RAY_START_PARAMS, "template": _POD_TEMPLATE}},
        "workerGroupSpecs": {"type": "array", "items": {
            "type": "object", "required": ["groupName", "template"], "properties": {
                "groupName": {"type": "string", "pattern": _DNS1123},
                "replicas": {"type": "integer", "minimum": 0},
                "minReplicas": {"type": "integer", "minimum": 0},
                "maxReplicas": {"type": "integer", "minimum": 0},
                "rayStartParams": _RAY_START_PARAMS, "template": _POD_TEMPLATE}}},
    },
}
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "pattern": _DNS1123}}}

RAYCLUSTER = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayCluster"},
                   "metadata": _METADATA, "spec": _CLUSTER_SPEC},
}

RAYJOB = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayJob"}, "metadata": _METADATA,
        "spec": {
            "type": "object", "required": ["entrypoint"],
            "properties": {
                "entrypoint": _STR,
                "runtimeEnvYAML": {"type": "string"},
                "shutdownAfterJobFinishes": {"type": "boolean"},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "backoffLimit": {"type": "integer", "minimum": 0},
                "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
                "rayClusterSpec": _CLUSTER_SPEC,
                "clusterSelector": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "oneOf": [{"required": ["rayClusterSpec"]}, {"required": ["clusterSelector"]}],
        },
    },
}
