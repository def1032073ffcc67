"""test_compose.py -- docker-compose.yml, checked with Docker Compose itself (`docker compose
config` loads, interpolates and validates the file against the compose specification without a
container engine), promtool for the Prometheus configuration and the dashboard's queries, and the
rendered model for what the deployment promises: AOF Redis, a MongoDB replica set initialised
once, an S3 server keeping the originals with its bucket made once, health-gated start order,
scalable consumers, an ingest on catalogs/, no credential in the file."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy_tools import ROOT, clean_env, compose_bin, promtool_bin, run

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SECRETS = ["REDIS_PASSWORD", "MONGO_ROOT_PASSWORD", "MONGO_PIXFLOW_PASSWORD",
           "GRAFANA_ADMIN_PASSWORD", "PIXFLOW_WEB_TOKEN", "PIXFLOW_HTTP_TOKEN",
           "MINIO_ROOT_PASSWORD", "AWS_SECRET_ACCESS_KEY"]
# Not secret (.env.example names a default), but a credential all the same: never in the file.
REQUIRED = SECRETS + ["AWS_ACCESS_KEY_ID"]
CREDENTIAL_KEYS = ("PASSWORD", "TOKEN", "SECRET", "ACCESS_KEY")
DEFAULT_SERVICES = {"redis", "mongo", "mongo-init", "s3", "s3-init", "consumer", "ingest"}
# The programs that read or write originals (SPEC §2: PIXFLOW_RAW_URL and the S3 settings).
RAW_READERS = ("consumer", "admin", "web")
RAW_VARS = ("PIXFLOW_RAW_URL", "PIXFLOW_S3_ENDPOINT", "PIXFLOW_S3_REGION", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY")
S3_INIT = ROOT / "deploy" / "compose" / "s3-init.sh"
ALL_SERVICES = DEFAULT_SERVICES | {"admin", "prometheus", "grafana", "web"}
PROFILES = ("monitoring", "tools", "console")


def env_example():
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def marker(name):
    """A distinct, URL-safe value per secret, to find where each one ends up."""
    return "Mk" + re.sub(r"[^A-Za-z0-9]", "", name.title()) + "7x"


def write_env(path, **overrides):
    values = env_example()
    for key, value in values.items():
        if value == "":
            values[key] = marker(key)
    values.update(overrides)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items() if v is not None))
    return path


def compose(env_file, *args, profiles=(), check=True):
    cmd = [compose_bin(), "--project-directory", ROOT, "-f", COMPOSE_FILE, "--env-file",
           env_file]
    for p in profiles:
        cmd += ["--profile", p]
    return run([*cmd, *args], check=check, env=clean_env(), cwd=ROOT)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    env_file = write_env(tmp_path_factory.mktemp("compose") / ".env")
    out = compose(env_file, "config", "--format", "json", profiles=PROFILES)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """The model before interpolation: what the file itself says."""
    env_file = write_env(tmp_path_factory.mktemp("compose-raw") / ".env")
    out = compose(env_file, "config", "--no-interpolate", "--format", "json",
                  profiles=PROFILES)
    return json.loads(out.stdout)


def services(model):
    return model["services"]


def test_default_and_profile_services(tmp_path):
    env_file = write_env(tmp_path / ".env")
    default = json.loads(compose(env_file, "config", "--format", "json").stdout)
    assert set(default["services"]) == DEFAULT_SERVICES
    full = json.loads(compose(env_file, "config", "--format", "json",
                              profiles=PROFILES).stdout)
    assert set(full["services"]) == ALL_SERVICES
    assert full["services"]["prometheus"]["profiles"] == ["monitoring"]
    assert full["services"]["grafana"]["profiles"] == ["monitoring"]
    assert full["services"]["web"]["profiles"] == ["console"]


def test_console_needs_its_token_and_publishes_on_loopback(model):
    web = services(model)["web"]
    assert web["command"][:3] == ["pixflow-web", "--listen", "0.0.0.0:8090"]
    assert web["environment"]["PIXFLOW_WEB_TOKEN"] == marker("PIXFLOW_WEB_TOKEN")
    assert [(p["host_ip"], p["target"]) for p in web["ports"]] == [("127.0.0.1", 8090)]
    assert web["read_only"] is True and web["cap_drop"] == ["ALL"]
    assert web["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"


def test_env_example_matches_the_compose_file():
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    listed = set(env_example())
    assert used - listed == set(), "variables missing from .env.example"
    assert listed - used == set(), "variables in .env.example that compose never reads"
    for name in SECRETS:
        assert env_example()[name] == "", f"{name} must be left empty in .env.example"


@pytest.mark.parametrize("secret", REQUIRED)
def test_a_missing_secret_stops_compose(tmp_path, secret):
    env_file = write_env(tmp_path / ".env", **{secret: ""})
    proc = compose(env_file, "config", "--quiet", profiles=PROFILES, check=False)
    assert proc.returncode != 0
    assert secret in proc.stderr, proc.stderr


def test_credentials_only_come_from_the_environment(model, raw):
    text = COMPOSE_FILE.read_text()
    for name in SECRETS:
        assert marker(name) not in text
    rendered = json.dumps(model)
    for name in SECRETS:
        assert marker(name) in rendered, f"{name} is never used"
    # Every credential in the file is an interpolation, never a literal.
    for svc_name, svc in raw["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            value = value or ""
            if any(word in key for word in CREDENTIAL_KEYS):
                assert value.startswith("${"), f"{svc_name}.{key} = {value!r}"
            for userinfo in re.findall(r"://([^@/]*)@", value):
                password = userinfo.partition(":")[2]
                assert password.startswith("${"), f"{svc_name}.{key}: literal password"


def test_redis_appends_every_second_and_keeps_its_data(model):
    redis = services(model)["redis"]
    image, _, tag = redis["image"].partition(":")
    assert image == "redis" and int(tag.split(".")[0]) >= 7, "KEDA's lag trigger needs Redis 7"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert '--requirepass "$REDIS_PASSWORD"' in command.replace("$$", "$")
    assert any(v["target"] == "/data" and v["type"] == "volume" for v in redis["volumes"])
    assert "PONG" in " ".join(redis["healthcheck"]["test"])


def test_mongodb_is_a_replica_set_initialised_once(model):
    svc = services(model)
    mongo, init = svc["mongo"], svc["mongo-init"]
    cmd = mongo["command"]
    assert cmd[cmd.index("--replSet") + 1] == "rs0"
    assert "--keyFile" in cmd
    assert {v["target"] for v in mongo["volumes"] if v["type"] == "volume"} >= {"/data/db"}
    assert init["restart"] == "no"
    script = next(v for v in init["volumes"] if v["target"] == "/pixflow/mongo-init.js")
    source = Path(script["source"])
    assert source == ROOT / "deploy" / "compose" / "mongo-init.js" and source.is_file()
    js = source.read_text()
    assert re.search(r"rs\.initiate\(\{\s*_id:\s*'rs0'", js)
    assert "host: 'mongo:27017'" in js
    assert "mongosh" in " ".join(init["entrypoint"]) and "/pixflow/mongo-init.js" in " ".join(
        init["entrypoint"])
    uri = svc["consumer"]["environment"]["PIXFLOW_MONGO_URI"]
    for option in ("replicaSet=rs0", "w=majority", "retryWrites=true"):
        assert option in uri


def test_nothing_starts_before_what_it_needs(model):
    svc = services(model)
    stores = {"redis": "service_healthy", "mongo-init": "service_completed_successfully",
              "s3-init": "service_completed_successfully"}
    need = {
        "mongo-init": {"mongo": "service_healthy"},
        "s3-init": {"s3": "service_healthy"},
        "consumer": stores,
        "ingest": {"redis": "service_healthy"},
        "admin": stores,
        "web": stores,
        "grafana": {"prometheus": "service_healthy"},
    }
    for name, deps in need.items():
        got = {k: v["condition"] for k, v in svc[name]["depends_on"].items()}
        assert got == deps, name
    # Whatever is waited for as healthy has a health check that can become healthy.
    for name, s in svc.items():
        for dep, spec in (s.get("depends_on") or {}).items():
            if spec["condition"] == "service_healthy":
                check = svc[dep].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{name} -> {dep}"


def test_consumers_scale_and_stop_gracefully(model, tmp_path):
    consumer = services(model)["consumer"]
    assert consumer["deploy"]["replicas"] == 2
    # Fixed names or host ports would stop `--scale consumer=N`.
    assert "container_name" not in consumer and not consumer.get("ports")
    env = consumer["environment"]
    assert env["PIXFLOW_HTTP"] == "0.0.0.0:8080"
    test = consumer["healthcheck"]["test"]
    assert test[0] == "CMD" and "http://127.0.0.1:8080/healthz" in test
    drain = int(env["PIXFLOW_DRAIN_TIMEOUT"].rstrip("s"))
    assert int(consumer["stop_grace_period"].rstrip("s")) > drain
    assert consumer["read_only"] is True and consumer["cap_drop"] == ["ALL"]
    scaled = json.loads(compose(write_env(tmp_path / ".env", PIXFLOW_CONSUMERS="8"), "config",
                                "--format", "json").stdout)
    assert scaled["services"]["consumer"]["deploy"]["replicas"] == 8


def test_ingest_watches_the_catalogs_folder(model):
    ingest = services(model)["ingest"]
    assert ingest["command"] == ["pixflow-ingest", "--watch", "/catalogs"]
    mount = next(v for v in ingest["volumes"] if v["target"] == "/catalogs")
    assert mount["type"] == "bind" and Path(mount["source"]) == ROOT / "catalogs"
    assert not mount.get("read_only"), "ingest moves finished files to catalogs/.done/"
    assert ingest["healthcheck"].get("disable") is True
    assert ingest["user"] == "10001:10001"
    assert consumer_image(model) == ingest["image"] == services(model)["admin"]["image"]


def consumer_image(model):
    return services(model)["consumer"]["image"]


def test_images_are_pinned(model):
    for name, svc in services(model).items():
        if svc["image"] == consumer_image(model):
            assert "build" in svc, f"{name} runs the pixflow image, which compose must build"
            continue
        tag = svc["image"].rpartition(":")[2]
        assert ":" in svc["image"] and tag not in ("", "latest"), f"{name}: {svc['image']}"


def test_volumes_hold_the_data(model):
    assert set(model["volumes"]) >= {"redis-data", "mongo-data", "s3-data", "prometheus-data",
                                     "grafana-data"}


# ---- the raw zone: originals in the s3 service ------------------------------------------------

def test_s3_server_keeps_its_data_and_publishes_no_port(model):
    s3 = services(model)["s3"]
    image, _, tag = s3["image"].partition(":")
    assert image == "minio/minio" and re.fullmatch(r"RELEASE\.\d{4}-\d\d-\d\dT[\dZ-]+", tag)
    assert s3["command"] == ["server", "/data"]
    assert [(v["type"], v["source"]) for v in s3["volumes"] if v["target"] == "/data"] == [
        ("volume", "s3-data")]
    assert not s3.get("ports"), "only the compose network reaches the S3 server"
    assert s3["environment"]["MINIO_ROOT_PASSWORD"] == marker("MINIO_ROOT_PASSWORD")
    # The image has neither curl nor wget: the check runs the mc it ships, against itself.
    assert s3["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert s3["restart"] == "unless-stopped"


def test_bucket_init_is_one_shot_and_gates_the_programs(model):
    svc = services(model)
    init = svc["s3-init"]
    image, _, tag = init["image"].partition(":")
    assert image == "minio/mc" and tag.startswith("RELEASE.")
    assert init["restart"] == "no" and not init.get("ports")
    script = next(v for v in init["volumes"] if v["target"] == "/pixflow/s3-init.sh")
    assert Path(script["source"]) == S3_INIT and script["read_only"] is True
    assert init["entrypoint"] == ["sh", "/pixflow/s3-init.sh"]
    text = S3_INIT.read_text()
    # Idempotent: an existing bucket is no error; the user and its policy are set again.
    assert re.search(r'mc mb --ignore-existing "local/\$bucket"', text)
    assert "mc admin user add local" in text and "mc admin policy attach local" in text
    assert '"$local_endpoint"' in text and "local_endpoint=http://s3:9000" in text
    # It makes the user the programs sign with, from the same settings they get.
    env = init["environment"]
    for var in RAW_VARS:
        assert env[var] == svc["consumer"]["environment"][var], var
    assert env["MINIO_ROOT_PASSWORD"] == svc["s3"]["environment"]["MINIO_ROOT_PASSWORD"]
    assert env["MINIO_ROOT_USER"] == svc["s3"]["environment"]["MINIO_ROOT_USER"]
    for name in RAW_READERS:
        assert svc[name]["depends_on"]["s3-init"]["condition"] == \
            "service_completed_successfully", name


def test_s3_init_script_parses_as_posix_sh():
    run(["sh", "-n", S3_INIT])


def s3_init(**env):
    """Runs the script's own decisions that come before any mc call (none is on this PATH)."""
    base = {"PATH": "/usr/bin:/bin", "PIXFLOW_RAW_URL": "s3://pixflow/raw",
            "PIXFLOW_S3_ENDPOINT": "http://s3:9000", "AWS_ACCESS_KEY_ID": "pixflow",
            "AWS_SECRET_ACCESS_KEY": "x" * 40, "MINIO_ROOT_USER": "root",
            "MINIO_ROOT_PASSWORD": "y" * 40}
    base.update(env)
    return subprocess.run(["sh", str(S3_INIT)], env=base, capture_output=True, text=True,
                          timeout=30)


def test_s3_init_leaves_another_store_alone_and_refuses_what_cannot_work():
    other = s3_init(PIXFLOW_S3_ENDPOINT="https://s3.eu-west-3.amazonaws.com")
    assert other.returncode == 0 and "nothing to do" in other.stdout, other
    directory = s3_init(PIXFLOW_RAW_URL="file:///raw")
    assert directory.returncode == 1 and "PIXFLOW_RAW_URL must be s3://" in directory.stderr
    same_user = s3_init(AWS_ACCESS_KEY_ID="root")
    assert same_user.returncode == 1
    assert "AWS_ACCESS_KEY_ID must differ from MINIO_ROOT_USER" in same_user.stderr


def test_programs_keep_originals_in_the_s3_service(model):
    svc = services(model)
    for name in RAW_READERS:
        env = svc[name]["environment"]
        assert env["PIXFLOW_RAW_URL"] == "s3://pixflow/raw", name
        assert env["PIXFLOW_S3_ENDPOINT"] == "http://s3:9000", name
        assert env["PIXFLOW_S3_REGION"] == "us-east-1", name
        assert env["AWS_ACCESS_KEY_ID"] == "pixflow", name
        assert env["AWS_SECRET_ACCESS_KEY"] == marker("AWS_SECRET_ACCESS_KEY"), name
    # The endpoint names the S3 service and the port it listens on.
    host, _, port = svc["consumer"]["environment"]["PIXFLOW_S3_ENDPOINT"][len("http://"):] \
        .partition(":")
    assert host in svc and svc[host]["image"].startswith("minio/minio:") and port == "9000"
    # Ingest never touches originals: it gets no S3 key.
    assert not set(RAW_VARS) & set(svc["ingest"]["environment"])


def test_a_real_bucket_is_set_in_env_alone(tmp_path):
    env_file = write_env(tmp_path / ".env", PIXFLOW_RAW_URL="s3://acme-originals/pixflow",
                         PIXFLOW_S3_ENDPOINT="https://s3.eu-west-3.amazonaws.com",
                         PIXFLOW_S3_REGION="eu-west-3", AWS_ACCESS_KEY_ID="AKIAEXAMPLE")
    svc = json.loads(compose(env_file, "config", "--format", "json",
                             profiles=PROFILES).stdout)["services"]
    for name in RAW_READERS + ("s3-init",):
        env = svc[name]["environment"]
        assert env["PIXFLOW_RAW_URL"] == "s3://acme-originals/pixflow", name
        assert env["PIXFLOW_S3_ENDPOINT"] == "https://s3.eu-west-3.amazonaws.com", name
        assert env["PIXFLOW_S3_REGION"] == "eu-west-3", name
        assert env["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE", name


def test_one_transform_chain_for_consumers_console_and_admin(model, tmp_path):
    # The `default` rendition is what the consumers make; the console and the admin CLI name it.
    for name in ("consumer", "web", "admin"):
        assert services(model)[name]["environment"]["PIXFLOW_TRANSFORMS"] == "grayscale", name
    env_file = write_env(tmp_path / ".env", PIXFLOW_TRANSFORMS="grayscale,thumbnail:size=256")
    svc = json.loads(compose(env_file, "config", "--format", "json",
                             profiles=PROFILES).stdout)["services"]
    for name in ("consumer", "web", "admin"):
        assert svc[name]["environment"]["PIXFLOW_TRANSFORMS"] == "grayscale,thumbnail:size=256"


def test_prometheus_config_is_valid_and_scrapes_every_consumer(model, tmp_path):
    prom = services(model)["prometheus"]
    mount = next(v for v in prom["volumes"] if v["target"] == "/etc/prometheus/prometheus.yml")
    path = Path(mount["source"])
    # promtool checks that the token file exists: point it at a stand-in for the secret.
    stand_in = tmp_path / "token"
    stand_in.write_text(marker("PIXFLOW_HTTP_TOKEN"))
    checked = tmp_path / "prometheus.yml"
    checked.write_text(path.read_text().replace("/run/secrets/pixflow_http_token", str(stand_in)))
    run([promtool_bin(), "check", "config", checked])
    job = next(j for j in yaml.safe_load(path.read_text())["scrape_configs"]
               if j["job_name"] == "pixflow-consumer")
    assert job["metrics_path"] == "/metrics"
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["consumer"] and sd["type"] == "A" and sd["port"] == 8080
    # /metrics needs the consumers' token: Prometheus reads it from the compose secret.
    secret = job["authorization"]["credentials_file"]
    assert secret == "/run/secrets/pixflow_http_token"
    assert "pixflow_http_token" in [s if isinstance(s, str) else s["source"]
                                    for s in prom["secrets"]]
    assert services(model)["consumer"]["environment"]["PIXFLOW_HTTP_TOKEN"] == \
        marker("PIXFLOW_HTTP_TOKEN")
    assert "consumer" in services(model)


def grafana_paths(model):
    grafana = services(model)["grafana"]
    return {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}


def test_dashboard_is_provisioned_with_the_required_panels(model):
    paths = grafana_paths(model)
    prov = paths["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())
    ds = datasource["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((prov / "dashboards" / "pixflow.yml").read_text())["providers"][0]
    dash_dir = Path(provider["options"]["path"])
    assert dash_dir in {Path(t) for t in paths}, "the provider reads a folder nobody mounts"
    dashboard = json.loads((paths[str(dash_dir)] / "pixflow.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    for required in ("Throughput", "Backlog", "Pending", "Errors by reason",
                     "Stage latency p95"):
        assert required in titles
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == ds["uid"], panel["title"]
        assert panel["targets"], panel["title"]
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in ("pixflow_stream_lag", "pixflow_stream_pending", "pixflow_failed_total",
                   "pixflow_stage_seconds_bucket", "pixflow_stored_total"):
        assert metric in exprs
    assert "by (reason)" in exprs and "by (le, stage)" in exprs


def test_dashboard_queries_are_valid_promql(model, tmp_path):
    """Each panel query as a recording rule, so promtool parses it ($__rate_interval is
    Grafana's, replaced as Grafana would)."""
    paths = grafana_paths(model)
    dashboard = json.loads((paths["/etc/grafana/dashboards"] / "pixflow.json").read_text())
    rules = [{"record": f"pixflow:panel{p['id']}_{t['refId']}",
              "expr": t["expr"].replace("$__rate_interval", "1m")}
             for p in dashboard["panels"] for t in p["targets"]]
    rule_file = tmp_path / "dashboard-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = run([promtool_bin(), "check", "rules", rule_file]).stdout
    assert f"SUCCESS: {len(rules)} rules found" in out
