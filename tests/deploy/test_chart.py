"""test_chart.py -- charts/pixflow, checked with Helm itself (lint, template), the rendered
manifests validated against the Kubernetes API schemas in strict mode (kubernetes-validate), then
read back for what the chart promises: probes, resources, non-root read-only pods, a drain that
Kubernetes does not cut short, spreading and disruption budget, KEDA on the group's lag or a CPU
HPA, transforms from a ConfigMap, extra plugins, ingest, ServiceMonitor, the raw store's bucket
and keys, secrets kept out of the manifests' plain text."""

import base64
import re
import shutil
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from deploy_tools import ROOT, clean_env, helm_bin, run

CHART = ROOT / "charts" / "pixflow"
CI = CHART / "ci"
KUBE_MIN = "1.25.0"     # Chart.yaml kubeVersion
KUBE_LATEST = "1.37.0"  # newest schema kubernetes-validate ships
KUBE_IMAGE_VOLUMES = "1.33.0"
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}
KEDA_API = "keda.sh/v1alpha1/ScaledObject"

# name -> (values files, --set pairs, extra --api-versions, Kubernetes versions to validate)
SCENARIOS = {
    "default": (["default-values.yaml"], [], [], [KUBE_MIN, KUBE_LATEST]),
    "default-keda": (["default-values.yaml"], [], [KEDA_API], [KUBE_MIN, KUBE_LATEST]),
    "all-on": (["all-on-values.yaml"], [], [], [KUBE_IMAGE_VOLUMES, KUBE_LATEST]),
    "hpa-job": (["hpa-job-values.yaml"], [], [], [KUBE_MIN, KUBE_LATEST]),
    "fixed": (["default-values.yaml"], ["autoscaling.mode=none", "consumer.replicas=3"], [],
              [KUBE_MIN]),
}


def helm(*args, check=True):
    return run([helm_bin(), *args], check=check, env=clean_env(KUBECONFIG="/nonexistent"))


def template_args(values=(), sets=(), apis=(), kube=KUBE_LATEST, chart=CHART):
    args = ["template", "rel", chart, "--namespace", "pixflow", "--kube-version", kube]
    for v in values:
        args += ["-f", CI / v]
    for s in sets:
        args += ["--set", s]
    for a in apis:
        args += ["--api-versions", a]
    return args


def render(values=(), sets=(), apis=(), kube=KUBE_LATEST):
    out = helm(*template_args(values, sets, apis, kube)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def render_error(values=(), sets=()):
    proc = helm(*template_args(values, sets), check=False)
    assert proc.returncode != 0, "helm template should have refused these values"
    return proc.stderr


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request):
    values, sets, apis, _ = SCENARIOS[request.param]
    return request.param, render(values, sets, apis)


def find(docs, kind, component=None):
    out = [d for d in docs if d["kind"] == kind and (
        component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") ==
        component)]
    return out


def one(docs, kind, component=None):
    found = find(docs, kind, component)
    assert len(found) == 1, f"expected one {kind} ({component}), found {len(found)}"
    return found[0]


def consumer_deployment(docs):
    return one(docs, "Deployment", "consumer")


def container(pod_spec, name):
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def env_list(c):
    return {e["name"]: e for e in c.get("env", [])}


def config_of(docs, c):
    """The values the container gets from its ConfigMaps (envFrom)."""
    maps = {d["metadata"]["name"]: d["data"] for d in find(docs, "ConfigMap")}
    merged = {}
    for ref in c.get("envFrom", []):
        merged.update(maps[ref["configMapRef"]["name"]])
    return merged


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def seconds(text):
    m = re.fullmatch(r"(\d+)s", text)
    assert m, text
    return int(m.group(1))


# ---- Helm's own checks -----------------------------------------------------------------------

@pytest.mark.parametrize("values", [None] + sorted(p.name for p in CI.glob("*-values.yaml")))
def test_helm_lint_strict(values):
    extra = ["-f", CI / values] if values else []
    out = helm("lint", "--strict", "--kube-version", KUBE_LATEST, CHART, *extra).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_defaults_ask_for_the_endpoints():
    assert "redis.host is required" in render_error()
    assert "mongodb.uri or mongodb.existingSecret is required" in render_error(
        sets=["redis.host=redis"])
    # Originals are kept by default: the chart asks where rather than drop them silently.
    assert "raw.url is required" in render_error(
        sets=["redis.host=redis", "mongodb.uri=mongodb://m/pixflow", "consumer.http.token=t"])


def test_bad_switches_are_refused():
    base = ["default-values.yaml"]
    assert "must exceed consumer.drainTimeoutSeconds" in render_error(
        base, ["consumer.drainTimeoutSeconds=45", "consumer.terminationGracePeriodSeconds=45"])
    assert "autoscaling.mode must be" in render_error(base, ["autoscaling.mode=sometimes"])
    assert "ingest.mode must be" in render_error(base, ["ingest.mode=always"])
    assert "needs ingest.job.catalog" in render_error(base, ["ingest.mode=job"])
    assert "must be a short DNS label" in render_error(
        base, ["plugins.extra[0].name=Bad_Name", "plugins.extra[0].image=x"])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_manifests_validate_against_the_kubernetes_schemas(name):
    values, sets, apis, versions = SCENARIOS[name]
    errors = []
    for kube in versions:
        docs = render(values, sets, apis, kube)
        assert docs
        for doc in docs:
            what = f"{doc['kind']}/{doc['metadata']['name']} @ {kube}"
            try:
                kubernetes_validate.validate(doc, kube, strict=True)
            except SchemaNotFoundError:
                if doc["kind"] not in CRD_KINDS:
                    errors.append(f"no schema for {what}")
            except jsonschema.ValidationError as e:
                errors.append(f"{what}: {e.message} at {list(e.path)}")
    assert not errors, "\n".join(errors)


# ---- the consumer pods -----------------------------------------------------------------------

def test_consumer_probes_resources_and_security(scenario):
    name, docs = scenario
    dep = consumer_deployment(docs)
    pod = dep["spec"]["template"]["spec"]
    c = container(pod, "consumer")
    port = next(p for p in c["ports"] if p["name"] == "http")["containerPort"]
    assert config_of(docs, c)["PIXFLOW_HTTP"] == f"0.0.0.0:{port}"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    for each in pod["containers"] + pod.get("initContainers", []):
        sc = each["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, each["name"]
        assert sc["allowPrivilegeEscalation"] is False, each["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], each["name"]
        assert each["resources"]["limits"], each["name"]
    # A read-only root still needs a writable /tmp.
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert pod["automountServiceAccountToken"] is False


def test_drain_ends_before_kubernetes_kills(scenario):
    _, docs = scenario
    pod = consumer_deployment(docs)["spec"]["template"]["spec"]
    drain = seconds(config_of(docs, container(pod, "consumer"))["PIXFLOW_DRAIN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > drain


def test_spread_and_disruption_budget_select_the_consumers(scenario):
    _, docs = scenario
    dep = consumer_deployment(docs)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selects(dep["spec"]["selector"]["matchLabels"], labels)
    spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} == {"kubernetes.io/hostname",
                                                  "topology.kubernetes.io/zone"}
    for s in spread:
        assert selects(s["labelSelector"]["matchLabels"], labels)
    pdb = one(docs, "PodDisruptionBudget", "consumer")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    ingest = find(docs, "Deployment", "ingest") + find(docs, "Job", "ingest")
    for other in ingest:
        other_labels = other["spec"]["template"]["metadata"]["labels"]
        assert not selects(pdb["spec"]["selector"]["matchLabels"], other_labels)


def test_transforms_come_from_a_configmap():
    docs = render(["default-values.yaml"])
    c = container(consumer_deployment(docs)["spec"]["template"]["spec"], "consumer")
    assert config_of(docs, c)["PIXFLOW_TRANSFORMS"] == "grayscale"
    assert "PIXFLOW_TRANSFORMS" not in env_list(c)
    changed = render(["default-values.yaml"], ["consumer.transforms=grayscale\\,invert"])
    c2 = container(consumer_deployment(changed)["spec"]["template"]["spec"], "consumer")
    assert config_of(changed, c2)["PIXFLOW_TRANSFORMS"] == "grayscale,invert"
    # The pods roll when the chain changes.
    checksum = lambda d: consumer_deployment(d)["spec"]["template"]["metadata"]["annotations"][
        "checksum/config"]
    assert checksum(docs) != checksum(changed)


# ---- Redis, MongoDB and secrets -------------------------------------------------------------

def test_endpoints_and_secrets(scenario):
    name, docs = scenario
    c = container(consumer_deployment(docs)["spec"]["template"]["spec"], "consumer")
    env = env_list(c)
    names = [e["name"] for e in c["env"]]
    url = env["PIXFLOW_REDIS_URL"]["value"]
    assert re.fullmatch(r"redis://([^@]*@)?[\w.-]+:\d+/\d+", url), url
    if "@" in url:
        # Kubernetes expands $(REDIS_PASSWORD) only from entries defined before it.
        assert "$(REDIS_PASSWORD)@" in url
        assert names.index("REDIS_PASSWORD") < names.index("PIXFLOW_REDIS_URL")
        assert "secretKeyRef" in env["REDIS_PASSWORD"]["valueFrom"]
    assert "secretKeyRef" in env["PIXFLOW_MONGO_URI"]["valueFrom"]
    secrets = {d["metadata"]["name"]: d for d in find(docs, "Secret")}
    for var in ("PIXFLOW_MONGO_URI", "REDIS_PASSWORD"):
        if var in env:
            ref = env[var]["valueFrom"]["secretKeyRef"]
            if ref["name"] in secrets:
                assert ref["key"] in secrets[ref["name"]]["data"], var


def test_values_secrets_never_appear_in_plain_text():
    docs = render(["all-on-values.yaml"])
    values = yaml.safe_load((CI / "all-on-values.yaml").read_text())
    plain = yaml.safe_dump([d for d in docs if d["kind"] != "Secret"])
    assert values["redis"]["password"] not in plain
    assert values["mongodb"]["uri"] not in plain
    assert values["consumer"]["http"]["token"] not in plain
    assert values["raw"]["secretAccessKey"] not in plain
    assert values["raw"]["accessKeyId"] not in plain
    data = one(docs, "Secret")["data"]
    assert base64.b64decode(data["redis-password"]).decode() == values["redis"]["password"]
    assert base64.b64decode(data["mongodb-uri"]).decode() == values["mongodb"]["uri"]
    assert base64.b64decode(data["http-token"]).decode() == values["consumer"]["http"]["token"]
    assert base64.b64decode(data["aws-access-key-id"]).decode() == values["raw"]["accessKeyId"]
    assert base64.b64decode(data["aws-secret-access-key"]).decode() == \
        values["raw"]["secretAccessKey"]


def test_http_token_comes_from_a_secret_and_is_required(scenario):
    name, docs = scenario
    dep = consumer_deployment(docs)
    env = env_list(container(dep["spec"]["template"]["spec"], "consumer"))
    ref = env["PIXFLOW_HTTP_TOKEN"]["valueFrom"]["secretKeyRef"]
    secrets = {d["metadata"]["name"]: d for d in find(docs, "Secret")}
    if ref["name"] in secrets:
        assert ref["key"] in secrets[ref["name"]]["data"]
    else:
        assert ref == {"name": "pixflow-http", "key": "token"}
    for sm in find(docs, "ServiceMonitor"):
        auth = sm["spec"]["endpoints"][0]["authorization"]
        assert auth["type"] == "Bearer" and auth["credentials"] == ref
    message = render_error(["default-values.yaml"], ["consumer.http.existingSecret="])
    assert "consumer.http.token or consumer.http.existingSecret is required" in message


def test_network_policy_admits_only_the_listed_peers_to_the_http_port():
    docs = render(["all-on-values.yaml"])
    policies = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p
                for p in find(docs, "NetworkPolicy")}
    consumer = policies["consumer"]["spec"]
    pod_labels = consumer_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert selects(consumer["podSelector"]["matchLabels"], pod_labels)
    assert consumer["policyTypes"] == ["Ingress"]
    (rule,) = consumer["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]
    ingest = policies["ingest"]["spec"]
    assert ingest["policyTypes"] == ["Ingress"] and not ingest.get("ingress")
    assert ingest["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ingest"
    assert not find(render(["default-values.yaml"], ["networkPolicy.enabled=false"]),
                    "NetworkPolicy")


def test_existing_secrets_are_used_as_they_are():
    docs = render(["default-values.yaml"])
    assert not find(docs, "Secret"), "nothing to keep: the Secrets already exist"
    env = env_list(container(consumer_deployment(docs)["spec"]["template"]["spec"], "consumer"))
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis",
                                                                  "key": "redis-password"}
    assert env["PIXFLOW_MONGO_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mongodb-pixflow",
                                                                     "key": "uri"}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "pixflow-s3", "key": "aws-access-key-id"}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "pixflow-s3", "key": "aws-secret-access-key"}
    renamed = render(["default-values.yaml"], ["raw.existingSecretAccessKeyIdKey=id",
                                               "raw.existingSecretSecretAccessKeyKey=secret"])
    env = env_list(container(consumer_deployment(renamed)["spec"]["template"]["spec"],
                             "consumer"))
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["key"] == "id"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "secret"


# ---- the raw store ---------------------------------------------------------------------------

RAW_VARS = ("PIXFLOW_RAW_URL", "PIXFLOW_S3_ENDPOINT", "PIXFLOW_S3_REGION", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def scenario_values(name):
    """The chart's raw.* values as the scenario sets them, over the chart's defaults."""
    raw = dict(yaml.safe_load((CHART / "values.yaml").read_text())["raw"])
    for f in SCENARIOS[name][0]:
        raw.update((yaml.safe_load((CI / f).read_text()) or {}).get("raw") or {})
    return raw


def test_originals_go_where_raw_says(scenario):
    name, docs = scenario
    raw = scenario_values(name)
    pods = [consumer_deployment(docs)] + [d for d in find(docs, "Deployment", "web")]
    secrets = {d["metadata"]["name"]: d for d in find(docs, "Secret")}
    for dep in pods:
        c = dep["spec"]["template"]["spec"]["containers"][0]
        env = env_list(c)
        what = f"{name}: {dep['metadata']['name']}"
        # Never in a ConfigMap: the ingest pods share those and have no business with originals.
        assert not set(RAW_VARS) & set(config_of(docs, c)), what
        if not raw["enabled"]:
            assert not set(RAW_VARS) & set(env), what
            continue
        assert env["PIXFLOW_RAW_URL"]["value"] == raw["url"], what
        assert env["PIXFLOW_S3_REGION"]["value"] == raw["region"], what
        if raw["endpoint"]:
            assert env["PIXFLOW_S3_ENDPOINT"]["value"] == raw["endpoint"], what
        else:
            assert "PIXFLOW_S3_ENDPOINT" not in env, f"{what}: AWS's endpoint for the region"
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            ref = env[var]["valueFrom"]["secretKeyRef"]
            if raw["existingSecret"]:
                assert ref["name"] == raw["existingSecret"], what
            else:
                assert ref["key"] in secrets[ref["name"]]["data"], what
    for other in find(docs, "Deployment", "ingest") + find(docs, "Job", "ingest"):
        c = other["spec"]["template"]["spec"]["containers"][0]
        assert not set(RAW_VARS) & (set(env_list(c)) | set(config_of(docs, c))), name
    if not raw["enabled"]:
        for secret in secrets.values():
            assert not {"aws-access-key-id", "aws-secret-access-key"} & set(secret["data"])


def test_the_console_reads_the_same_originals():
    docs = render(["all-on-values.yaml"])
    web = container(one(docs, "Deployment", "web")["spec"]["template"]["spec"], "web")
    consumer = container(consumer_deployment(docs)["spec"]["template"]["spec"], "consumer")
    assert {k: v for k, v in env_list(web).items() if k in RAW_VARS} == \
        {k: v for k, v in env_list(consumer).items() if k in RAW_VARS}


def test_raw_values_are_checked_before_anything_runs():
    base = ["default-values.yaml"]
    assert "raw.url is required" in render_error(base, ["raw.url="])
    for bad in ("s3://x", "s3://pixflow/raw/", "s3://pixflow//raw", "s3://Pixflow/raw",
                "file:///var/lib/pixflow", "https://bucket.s3.amazonaws.com/raw"):
        assert "raw.url must be s3://BUCKET[/PREFIX]" in render_error(base, [f"raw.url={bad}"]), \
            bad
    assert "raw.endpoint must be http(s)://HOST[:PORT]" in render_error(
        base, ["raw.endpoint=minio:9000"])
    message = "raw.existingSecret, or raw.accessKeyId and raw.secretAccessKey, is required"
    assert message in render_error(base, ["raw.existingSecret="])
    assert message in render_error(base, ["raw.existingSecret=", "raw.accessKeyId=pixflow"])
    # Turned off explicitly, nothing about it is asked.
    docs = render(base, ["raw.enabled=false", "raw.url=", "raw.existingSecret="])
    env = env_list(container(consumer_deployment(docs)["spec"]["template"]["spec"], "consumer"))
    assert "PIXFLOW_RAW_URL" not in env


def test_lint_passes_with_the_raw_store_off_and_with_keys_in_values():
    for sets in (["raw.enabled=false"], ["raw.existingSecret=", "raw.accessKeyId=k",
                                         "raw.secretAccessKey=s3cretS3Key"]):
        args = ["lint", "--strict", "--kube-version", KUBE_LATEST, CHART, "-f",
                CI / "default-values.yaml"]
        for s in sets:
            args += ["--set", s]
        assert "1 chart(s) linted, 0 chart(s) failed" in helm(*args).stdout


# ---- autoscaling -----------------------------------------------------------------------------

def scaled_object_checks(docs):
    dep = consumer_deployment(docs)
    so = one(docs, "ScaledObject")
    assert not find(docs, "HorizontalPodAutoscaler"), "KEDA makes its own HPA"
    assert "replicas" not in dep["spec"], "a fixed count would fight the autoscaler"
    assert so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert so["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert so["spec"]["minReplicaCount"] == 0, "scales to zero"
    c = container(dep["spec"]["template"]["spec"], "consumer")
    cfg = config_of(docs, c)
    url = env_list(c)["PIXFLOW_REDIS_URL"]["value"]
    host_port, db = re.search(r"@?([\w.-]+:\d+)/(\d+)$", url).groups()
    triggers = {t["name"]: t for t in so["spec"]["triggers"]}
    lag = triggers["lag"]
    assert lag["type"] == "redis-streams"
    meta = lag["metadata"]
    assert meta["stream"] == cfg["PIXFLOW_PREFIX"] + "urls"
    assert meta["consumerGroup"] == cfg["PIXFLOW_GROUP"]
    assert meta["address"] == host_port and meta["databaseIndex"] == db
    assert int(meta["lagCount"]) > 0 and int(meta["activationLagCount"]) >= 0
    assert all(isinstance(v, str) for t in triggers.values() for v in t["metadata"].values())
    pending = triggers["pending"]["metadata"]
    assert int(pending["pendingEntriesCount"]) == int(cfg["PIXFLOW_MAX_INFLIGHT"])
    if "@" in url:
        auth = one(docs, "TriggerAuthentication")
        for t in triggers.values():
            assert t["authenticationRef"]["name"] == auth["metadata"]["name"]
        ref = auth["spec"]["secretTargetRef"][0]
        assert ref["parameter"] == "password"
        assert {"name": ref["name"], "key": ref["key"]} == env_list(c)["REDIS_PASSWORD"][
            "valueFrom"]["secretKeyRef"]
    return so


def test_keda_scales_on_the_group_lag():
    so = scaled_object_checks(render(["all-on-values.yaml"]))
    assert so["spec"]["maxReplicaCount"] == 50
    assert so["spec"]["triggers"][0]["metadata"]["usernameFromEnv"] == "REDIS_USERNAME"


def test_auto_mode_picks_keda_only_when_installed():
    scaled_object_checks(render(["default-values.yaml"], apis=[KEDA_API]))
    without = render(["default-values.yaml"])
    assert not find(without, "ScaledObject") and not find(without, "TriggerAuthentication")
    hpa = one(without, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == consumer_deployment(without)["metadata"][
        "name"]


def test_hpa_scales_on_cpu():
    docs = render(["hpa-job-values.yaml"])
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 3
    metric = hpa["spec"]["metrics"][0]["resource"]
    assert metric["name"] == "cpu" and metric["target"]["type"] == "Utilization"
    assert not find(docs, "ScaledObject")
    assert "replicas" not in consumer_deployment(docs)["spec"]


def test_no_autoscaler_keeps_a_fixed_count():
    docs = render(["default-values.yaml"], ["autoscaling.mode=none", "consumer.replicas=3"])
    assert consumer_deployment(docs)["spec"]["replicas"] == 3
    assert not find(docs, "ScaledObject") and not find(docs, "HorizontalPodAutoscaler")


# ---- plugins, ingest, monitoring -------------------------------------------------------------

def test_extra_plugins_fill_the_plugin_folder():
    docs = render(["all-on-values.yaml"])
    pod = consumer_deployment(docs)["spec"]["template"]["spec"]
    c = container(pod, "consumer")
    plugin_dir = env_list(c)["PIXFLOW_PLUGIN_PATH"]["value"]
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == plugin_dir)
    assert mount["readOnly"] is True
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mount["name"])
    inits = {i["name"]: i for i in pod["initContainers"]}
    # The image's own plugins and the image-volume plugin, copied by the pixflow image.
    builtin = inits["plugins"]
    assert builtin["image"] == c["image"]
    assert "$PIXFLOW_PLUGIN_PATH" in builtin["command"][2]
    assert builtin["command"][-1] == "/plugin-images/watermark/usr/lib/pixflow"
    volume = next(v for v in pod["volumes"] if v["name"] == "plugin-watermark")
    assert volume["image"] == {"reference": "registry.example.com/pixflow-watermark:2.1",
                               "pullPolicy": "Always"}
    assert {"name": "plugin-watermark", "mountPath": "/plugin-images/watermark",
            "readOnly": True} in builtin["volumeMounts"]
    # The init-container plugin copies its own files.
    resize = inits["plugin-resize"]
    assert resize["image"] == "registry.example.com/pixflow-resize:1.0"
    assert resize["command"][-1] == "/plugins" and "cp --" in resize["command"][2]
    for init in (builtin, resize):
        assert any(m["mountPath"] == plugin_dir and m["name"] == mount["name"]
                   for m in init["volumeMounts"])
    assert list(inits) == ["plugins", "plugin-resize"], "the image's own plugins first"


def test_without_extra_plugins_the_image_folder_is_used():
    pod = consumer_deployment(render(["default-values.yaml"]))["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert "PIXFLOW_PLUGIN_PATH" not in env_list(container(pod, "consumer"))


def test_ingest_watches_a_claim():
    docs = render(["all-on-values.yaml"])
    dep = one(docs, "Deployment", "ingest")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]["spec"]
    c = container(pod, "ingest")
    assert c["command"] == ["pixflow-ingest"] and c["args"] == ["--watch", "/catalogs"]
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/catalogs")
    claim = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    pvc = one(docs, "PersistentVolumeClaim")
    assert claim["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert env_list(c)["PIXFLOW_INGEST_MAX_BACKLOG"]["value"] == "100000"
    assert config_of(docs, c)["PIXFLOW_PREFIX"] == "prod:"


def test_ingest_job_reads_one_catalog():
    docs = render(["hpa-job-values.yaml"])
    job = one(docs, "Job", "ingest")
    assert job["metadata"]["name"].endswith("-1"), "named after the release revision"
    pod = job["spec"]["template"]["spec"]
    c = container(pod, "ingest")
    assert c["args"][-1] == "/catalog/catalog.txt"
    volume = next(v for v in pod["volumes"] if v["name"] == "catalog")
    cm = next(d for d in find(docs, "ConfigMap")
              if d["metadata"]["name"] == volume["configMap"]["name"])
    assert cm["data"]["catalog.txt"].split() == ["https://picsum.photos/200/300",
                                                 "https://picsum.photos/640/480"]
    assert pod["restartPolicy"] == "OnFailure"
    assert not find(docs, "Deployment", "ingest")
    claim = render(["default-values.yaml"], ["ingest.mode=job", "ingest.job.existingClaim=data",
                                             "ingest.job.path=/in/today.txt"])
    pod = one(claim, "Job", "ingest")["spec"]["template"]["spec"]
    assert container(pod, "ingest")["args"][-1] == "/catalog/in/today.txt"
    assert next(v for v in pod["volumes"] if v["name"] == "catalog")[
        "persistentVolumeClaim"] == {"claimName": "data", "readOnly": True}


def test_service_monitor_scrapes_the_consumers():
    docs = render(["all-on-values.yaml"])
    sm = one(docs, "ServiceMonitor")
    svc = one(docs, "Service", "consumer")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert sm["spec"]["namespaceSelector"]["matchNames"] == ["pixflow"]
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    pod_labels = consumer_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert selects(svc["spec"]["selector"], pod_labels)
    assert not find(render(["default-values.yaml"]), "ServiceMonitor")


# ---- documentation ---------------------------------------------------------------------------

def test_console_runs_with_its_token_from_a_secret():
    assert "web.existingSecret is required" in render_error(["default-values.yaml"],
                                                            ["web.enabled=true"])
    assert not [d for d in render(["default-values.yaml"]) if "-web" in d["metadata"]["name"]]
    docs = render(["all-on-values.yaml"])
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-web"))
    svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-web"))
    pod = dep["spec"]["template"]["spec"]
    c = container(pod, "web")
    assert c["command"] == ["pixflow-web", "--listen", "0.0.0.0:8090"]
    env = {e["name"]: e for e in c["env"]}
    assert env["PIXFLOW_WEB_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "pixflow-web",
                                                                      "key": "web-token"}
    assert "PIXFLOW_REDIS_URL" in env and "PIXFLOW_MONGO_URI" in env
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert selects(svc["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])
    assert not selects(svc["spec"]["selector"], consumer_deployment(docs)["spec"]["template"]
                       ["metadata"]["labels"])


def test_the_console_names_the_consumers_chain():
    # A picture's page shows the `default` rendition: the console reads the consumers' chain
    # from their ConfigMap, and rolls with it (one checksum covers both maps).
    docs = render(["all-on-values.yaml"], ["consumer.transforms=grayscale\\,invert"])
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-web"))
    ref = env_list(container(dep["spec"]["template"]["spec"], "web"))["PIXFLOW_TRANSFORMS"]
    ref = ref["valueFrom"]["configMapKeyRef"]
    maps = {d["metadata"]["name"]: d["data"] for d in find(docs, "ConfigMap")}
    assert maps[ref["name"]][ref["key"]] == "grayscale,invert"
    c = container(consumer_deployment(docs)["spec"]["template"]["spec"], "consumer")
    assert config_of(docs, c)["PIXFLOW_TRANSFORMS"] == "grayscale,invert"


def test_notes_tell_how_to_push_urls_and_read_counters(tmp_path):
    """NOTES.txt rendered by Helm's engine: `helm template` skips notes, so a copy of the chart
    carries them inside a ConfigMap template."""
    chart = tmp_path / "pixflow"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_check.tpl").write_text(
        '{{- define "notes.check" -}}\n' + notes + "\n{{- end -}}\n")
    (chart / "templates" / "notes-check.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '    {{- include "notes.check" . | nindent 4 }}\n')
    for name, (values, sets, apis, _) in SCENARIOS.items():
        out = helm(*template_args(values, sets, apis, chart=chart), "--show-only",
                   "templates/notes-check.yaml").stdout
        text = yaml.safe_load(out)["data"]["notes"]
        docs = render(values, sets, apis)
        cfg = config_of(docs, container(consumer_deployment(docs)["spec"]["template"]["spec"],
                                        "consumer"))
        assert f"XADD {cfg['PIXFLOW_PREFIX']}urls" in text, name
        assert f"HGETALL {cfg['PIXFLOW_PREFIX']}stats" in text, name
        assert f"XINFO GROUPS {cfg['PIXFLOW_PREFIX']}urls" in text, name
        assert "pixflow-ingest < catalog.txt" in text, name
        assert "<no value>" not in text, name
        raw = scenario_values(name)
        if raw["enabled"]:
            assert f"Originals: kept unchanged in {raw['url']}" in text, name
        else:
            assert "Originals: not kept" in text, name


def test_values_are_documented_line_by_line():
    """Each setting has a comment right above it, or is inside the default of one that has."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack = []  # (indent, documented)
    undocumented = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        commented = prev.lstrip().startswith("#") and (not stack or prev.startswith(
            " " * indent + "#"))
        inherited = any(doc for _, doc in stack)
        leaf = m.group(3).strip() != ""
        if leaf and not (commented or inherited):
            undocumented.append(f"line {i + 1}: {line.strip()}")
        stack.append((indent, commented or inherited))
    assert not undocumented, "values without a comment:\n" + "\n".join(undocumented)
