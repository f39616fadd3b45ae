"""The checks the KubeRay operator makes in Go after the CRD schema has accepted a manifest: a RayJob or
RayCluster that fails one is accepted by `kubectl apply` and then marked failed by the operator (RayJob:
``validateRayJob`` in rayjob_controller.go, event InvalidRayJobSpec; RayCluster: raycluster_controller.go).

Translated from ray-project/kuberay at commit feeaf72facab4881ba2b179248bb67315634e229 (2026-08-19, the commit
the CRDs in ../shared/schemas come from), ``ray-operator/controllers/ray/utils/validation.go``:

- ``ValidateRayJobMetadata``: name a DNS-1035 label of at most 47 characters (``MaxRayJobNameLength``: 53 less
  the 6 characters of the RayCluster suffix).
- ``ValidateRayJobSpec``: suspend needs shutdownAfterJobFinishes; ttlSecondsAfterFinished >= 0; rayClusterSpec
  or clusterSelector; clusterSelector: a non-empty ``ray.io/cluster``, no suspend, no SidecarMode and no
  backoffLimit > 0; InteractiveMode: no backoffLimit > 0; SidecarMode: no submitterPodTemplate /
  submitterConfig, head restartPolicy Never or unset; rayClusterSpec passes ValidateRayClusterSpec (and no
  K8s token auth); runtimeEnvYAML parses as a YAML mapping (``UnmarshalRuntimeEnvYAML``);
  activeDeadlineSeconds and preRunningDeadlineSeconds > 0; backoffLimit >= 0.
- ``validateDeletionConfiguration`` (first rule): ttlSecondsAfterFinished > 0 needs shutdownAfterJobFinishes.
- ``ValidateRayClusterMetadata``: name a DNS-1035 label of at most 53 characters.
- ``ValidateRayClusterSpec``: head and every worker group have a container; ``validateRayGroupResources``
  (no num-cpus/num-gpus/memory/resources in rayStartParams beside the group's ``resources``);
  ``validateRayGroupLabels`` (no rayStartParams ``labels``; label keys/values in Kubernetes syntax); without
  in-tree autoscaling, minReplicas and maxReplicas set; replicas bounds non-negative and min <= max;
  ``validateWorkerGroupIdleTimeout`` and ``validateWorkerGroupPriority`` (need autoscaler v2; priority needs
  Ray >= 2.56); RAY_REDIS_ADDRESS only with GCS fault tolerance; no redis username; no suspended worker group
  with autoscaling; RAY_enable_autoscaler_v2 only with autoscaling, and not beside autoscalerOptions.version;
  autoscaler v2: restartPolicy Never or unset; autoscalerOptions.idleTimeoutSeconds >= 0; no
  KUBERAY_GEN_AUTOSCALER_START_CMD in autoscalerOptions.env; historyServerOptions, networkPolicy, tlsOptions
  refused (their feature gates are off by default, pkg/features/features.go); token auth needs Ray >= 2.52.
- ``ValidateRayClusterUpgradeOptions``: upgradeStrategy.type Recreate or None, and none on a cluster a RayJob
  creates.

Not translated (none of infra/ sets these; ``unchecked`` reports them so that they do not pass silently):
deletionStrategy (``validateDeletionRules``/``validateLegacyDeletionPolicies``) and gcsFaultToleranceOptions
(``validateGcsFaultToleranceBackend`` and the redis rules beside it). Go stops at the first error; these
functions return every problem they find.
"""

from __future__ import annotations

import re

import yaml

SOURCE = "ray-project/kuberay@feeaf72facab4881ba2b179248bb67315634e229 ray-operator/controllers/ray/utils/validation.go"
MAX_RAYCLUSTER_NAME = 53
MAX_RAYJOB_NAME = MAX_RAYCLUSTER_NAME - 6
CLUSTER_SELECTOR_KEY = "ray.io/cluster"
UNCHECKED = {"RayJob": ("deletionStrategy",), "RayCluster": ("gcsFaultToleranceOptions",)}

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _dns1035(name: str, limit: int, what: str) -> list[str]:
    out = []
    if len(name) > limit:
        out.append(f"{what} name should be no more than {limit} characters")
    if len(name) > 63 or not _DNS1035.match(name):
        out.append(f"{what} name should be a valid DNS1035 label: {name!r}")
    return out


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v)[:3])


def _env(container: dict, name: str) -> dict | None:
    return next((e for e in container.get("env") or [] if e.get("name") == name), None)


def _qualified_name_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUB.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _group_problems(group: str, g: dict) -> list[str]:
    """validateRayGroupResources + validateRayGroupLabels."""
    out = []
    params, resources, labels = g.get("rayStartParams") or {}, g.get("resources") or {}, g.get("labels") or {}
    if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and resources:
        out.append(f"resource fields should not be set in both rayStartParams and Resources for {group} group")
    if "labels" in params:
        out.append(f"rayStartParams['labels'] is not supported for {group} group")
    for key, val in labels.items():
        if not _qualified_name_ok(key):
            out.append(f"invalid label key for {group} group: {key!r}")
        if val and (len(val) > 63 or not _LABEL_NAME.match(val)):
            out.append(f"invalid label value for key {key!r} in {group} group: {val!r}")
    return out


def raycluster_spec_problems(spec: dict, annotations: dict | None = None) -> list[str]:
    """ValidateRayClusterSpec (validation.go)."""
    annotations = annotations or {}
    out: list[str] = []
    head = spec.get("headGroupSpec") or {}
    head_pod = (head.get("template") or {}).get("spec") or {}
    if not head_pod.get("containers"):
        return ["headGroupSpec should have at least one container"]
    head_c = head_pod["containers"][0]  # RayContainerIndex
    autoscaling = spec.get("enableInTreeAutoscaling") is True  # IsAutoscalingEnabled
    opts = spec.get("autoscalerOptions") or {}
    v2 = opts.get("version") == "v2"  # IsAutoscalingV2Enabled
    v2_env = _env(head_c, "RAY_enable_autoscaler_v2")
    v2_by_env = v2_env is not None and v2_env.get("value") in ("1", "true")

    out += _group_problems("Head", head)
    for g in spec.get("workerGroupSpecs") or []:
        name = g.get("groupName")
        if not ((g.get("template") or {}).get("spec") or {}).get("containers"):
            out.append("workerGroupSpec should have at least one container")
        lo, hi = g.get("minReplicas"), g.get("maxReplicas")
        if not autoscaling and (lo is None or hi is None):
            out.append(f"worker group {name} must set both minReplicas and maxReplicas when autoscaling is disabled")
        for field, val in (("minReplicas", lo), ("maxReplicas", hi)):
            if val is not None and val < 0:
                out.append(f"worker group {name} has negative {field} {val}")
        if lo is not None and hi is not None and lo > hi:
            out.append(f"worker group {name} has minReplicas {lo} greater than maxReplicas {hi}")
        out += _group_problems(str(name), g)
        idle = g.get("idleTimeoutSeconds")  # validateWorkerGroupIdleTimeout
        if idle is not None and idle < 0:
            out.append(f"worker group {name}: idleTimeoutSeconds must be non-negative")
        elif idle is not None and not (v2 or v2_by_env):
            out.append(f"worker group {name}: idleTimeoutSeconds is set, but autoscaler v2 is not enabled")
        if g.get("priority"):  # validateWorkerGroupPriority
            if not spec.get("rayVersion") or _version(spec["rayVersion"]) < (2, 56, 0):
                out.append(f"worker group {name}: priority is set, but minimum Ray version is 2.56.0")
            elif not (v2 or v2_by_env):
                out.append(f"worker group {name}: priority is set, but autoscaler v2 is not enabled")
        if g.get("suspend") and autoscaling:
            out.append(f"worker group {name} cannot be suspended with Autoscaler enabled")

    ft = str(annotations.get("ray.io/ft-enabled", "")).lower() == "true" or spec.get("gcsFaultToleranceOptions")
    if annotations.get("ray.io/ft-enabled") and spec.get("gcsFaultToleranceOptions"):
        out.append("ray.io/ft-enabled annotation and GcsFaultToleranceOptions are both set")
    if not ft and _env(head_c, "RAY_REDIS_ADDRESS"):
        out.append("RAY_REDIS_ADDRESS is set which implicitly enables GCS fault tolerance, "
                   "but GcsFaultToleranceOptions is not set")
    if (head.get("rayStartParams") or {}).get("redis-username") or _env(head_c, "REDIS_USERNAME"):
        out.append("cannot set redis username in rayStartParams or environment variables")
    if not autoscaling and v2_by_env:
        out.append(f"environment variable RAY_enable_autoscaler_v2 cannot be set to {v2_env['value']!r} "
                   "when enableInTreeAutoscaling is false")
    if autoscaling:
        if opts.get("version") is not None and v2_env is not None:
            out.append("both .spec.autoscalerOptions.version and head Pod env var RAY_enable_autoscaler_v2 are set")
        if v2:
            pods = [("head Pod", head_pod)] + [(f"worker group {g.get('groupName')}", (g.get("template") or {})
                                                .get("spec") or {}) for g in spec.get("workerGroupSpecs") or []]
            for what, pod in pods:
                if pod.get("restartPolicy") not in (None, "", "Never"):
                    out.append(f"restartPolicy for {what} should be Never or unset when using autoscaler V2")
    if (opts.get("idleTimeoutSeconds") or 0) < 0:
        out.append("autoscalerOptions.idleTimeoutSeconds must be non-negative")
    if any(e.get("name") == "KUBERAY_GEN_AUTOSCALER_START_CMD" for e in opts.get("env") or []):
        out.append("autoscalerOptions.env must not contain KUBERAY_GEN_AUTOSCALER_START_CMD")
    for field, gate in (("historyServerOptions", "RayClusterHistoryServer"),
                        ("networkPolicy", "RayClusterNetworkPolicy"), ("tlsOptions", "RayClusterMTLS")):
        if spec.get(field) is not None:
            out.append(f"spec.{field} requires the {gate} feature gate (off by default)")
    auth = spec.get("authOptions") or {}
    if auth.get("mode") == "token":  # IsAuthEnabled
        if not spec.get("rayVersion") or _version(spec["rayVersion"]) < (2, 52, 0):
            out.append("authOptions.mode is 'token' but minimum Ray version is 2.52.0")
        if auth.get("enableK8sTokenAuth") and _version(spec.get("rayVersion", "0")) < (2, 55, 0):
            out.append("authOptions.enableK8sTokenAuth is enabled but minimum Ray version is 2.55.0")
        if auth.get("enableK8sTokenAuth") and auth.get("secretName"):
            out.append("authOptions.enableK8sTokenAuth is enabled and authOptions.secretName is also set")
    elif auth.get("enableK8sTokenAuth"):
        out.append("authOptions.enableK8sTokenAuth is enabled but authOptions.mode not set to 'token'")
    return out


def _upgrade_problems(spec: dict, created_by_rayjob: bool) -> list[str]:
    """ValidateRayClusterUpgradeOptions."""
    kind = (spec.get("upgradeStrategy") or {}).get("type")
    if kind is None:
        return []
    if kind not in ("Recreate", "None"):
        return [f"Spec.UpgradeStrategy.Type value {kind} is invalid, valid options are Recreate or None"]
    return ["upgradeStrategy cannot be set when RayCluster is created by RayJob"] if created_by_rayjob else []


def unchecked(doc: dict) -> list[str]:
    """Fields whose Go rules are not translated here: present means 'add the rules', not 'valid'."""
    spec = doc.get("spec") or {}
    fields = [f for f in UNCHECKED.get(doc.get("kind"), ()) if f in spec]
    if doc.get("kind") == "RayJob" and "gcsFaultToleranceOptions" in (spec.get("rayClusterSpec") or {}):
        fields.append("rayClusterSpec.gcsFaultToleranceOptions")
    return [f"spec.{f}: its KubeRay rules are not checked offline (translate them from {SOURCE})" for f in fields]


def rayjob_problems(doc: dict) -> list[str]:
    """ValidateRayJobMetadata + ValidateRayJobSpec (validation.go), plus the cluster it creates."""
    spec = doc.get("spec") or {}
    out = _dns1035((doc.get("metadata") or {}).get("name", ""), MAX_RAYJOB_NAME, "RayJob")
    suspend, shutdown = bool(spec.get("suspend")), bool(spec.get("shutdownAfterJobFinishes"))
    mode = spec.get("submissionMode") or "K8sJobMode"
    backoff = spec.get("backoffLimit")
    selector = spec.get("clusterSelector") or {}
    cluster = spec.get("rayClusterSpec")
    if suspend and not shutdown:
        out.append("a RayJob with shutdownAfterJobFinishes set to false is not allowed to be suspended")
    ttl = spec.get("ttlSecondsAfterFinished") or 0
    if ttl < 0:
        out.append("TTLSecondsAfterFinished must be a non-negative integer")
    if not shutdown and ttl > 0:  # validateDeletionConfiguration
        out.append("a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished")
    if suspend and selector:
        out.append("the ClusterSelector mode doesn't support the suspend operation")
    if cluster is None and not selector:
        out.append("one of RayClusterSpec or ClusterSelector must be set")
    if selector:
        if not selector.get(CLUSTER_SELECTOR_KEY):
            out.append("cluster name in ClusterSelector should not be empty")
        if mode == "SidecarMode":
            out.append("ClusterSelector is not supported in SidecarMode")
        if backoff is not None and backoff > 0:
            out.append("BackoffLimit is incompatible with ClusterSelector mode")
    if mode == "InteractiveMode" and backoff is not None and backoff > 0:
        out.append("BackoffLimit is incompatible with InteractiveMode")
    if mode == "SidecarMode":
        if spec.get("submitterPodTemplate") is not None:
            out.append("Currently, SidecarMode doesn't support SubmitterPodTemplate")
        if spec.get("submitterConfig") is not None:
            out.append("Currently, SidecarMode doesn't support SubmitterConfig")
        head_pod = (((cluster or {}).get("headGroupSpec") or {}).get("template") or {}).get("spec") or {}
        if head_pod.get("restartPolicy") not in (None, "", "Never"):
            out.append("restartPolicy for head Pod should be Never or unset when using SidecarMode")
    if cluster is not None:
        if (cluster.get("authOptions") or {}).get("enableK8sTokenAuth"):
            out.append("K8s token auth mode is currently not supported for RayJob")
        annotations = (doc.get("metadata") or {}).get("annotations") or {}
        out += [f"rayClusterSpec: {p}" for p in raycluster_spec_problems(cluster, annotations)]
        out += [f"rayClusterSpec: {p}" for p in _upgrade_problems(cluster, created_by_rayjob=True)]
    try:
        env = yaml.safe_load(spec.get("runtimeEnvYAML") or "")
        if env is not None and not isinstance(env, dict):
            out.append(f"failed to unmarshal RuntimeEnvYAML: a {type(env).__name__}, not a mapping")
    except yaml.YAMLError as e:
        out.append(f"failed to unmarshal RuntimeEnvYAML: {e}")
    for field in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if spec.get(field) is not None and spec[field] <= 0:
            out.append(f"{field} must be a positive integer")
    if backoff is not None and backoff < 0:
        out.append("backoffLimit must be a positive integer")
    return out + unchecked(doc)


def raycluster_problems(doc: dict) -> list[str]:
    """ValidateRayClusterMetadata + ValidateRayClusterSpec + ValidateRayClusterUpgradeOptions."""
    spec = doc.get("spec") or {}
    meta = doc.get("metadata") or {}
    by_job = (meta.get("labels") or {}).get("ray.io/originated-from-crd") == "RayJob"
    return (_dns1035(meta.get("name", ""), MAX_RAYCLUSTER_NAME, "RayCluster")
            + raycluster_spec_problems(spec, meta.get("annotations") or {})
            + _upgrade_problems(spec, created_by_rayjob=by_job) + unchecked(doc))


def problems(doc: dict) -> list[str]:
    """The operator's rules for one KubeRay manifest (RayJob or RayCluster)."""
    return {"RayJob": rayjob_problems, "RayCluster": raycluster_problems}[doc["kind"]](doc)
