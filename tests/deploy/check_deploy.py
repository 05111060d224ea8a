#!/usr/bin/env python3
"""Checks of the deployment files (deploy/, Dockerfile), Python standard library only.

    check_deploy.py static     dashboards parse and match their generator; every metric and
                               label used by dashboards, rules and the HPA adapter is one that
                               server/metrics.cc defines; copies (ConfigMap, PrometheusRule)
                               agree with their sources; ports, drain and grace periods agree.
    check_deploy.py promtool   promtool check config / check rules / test rules, a syntax check
                               of every dashboard query, and the corpus BLEU queries (dashboard
                               and recording rule) evaluated by promtool on counters built from
                               sacreBLEU's statistics (tests/text/data/bleu_expected.tsv),
                               compared with sacreBLEU's corpus scores.
                               Exits 77 (skipped) when promtool is not installed.
Exit status: 0 pass, 1 failure (each problem is printed), 77 skipped.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.environ.get("MIXSERVE_SOURCE_DIR") or
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
PROM_DIR = os.path.join(DEPLOY, "compose", "prometheus")
RULES = os.path.join(PROM_DIR, "mixserve.rules.yml")
GRAFANA = os.path.join(DEPLOY, "compose", "grafana")
K8S = os.path.join(DEPLOY, "k8s")
SKIP = 77

# Labels Prometheus (or the Prometheus Operator's target labels) add to every series.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rel(path):
    return os.path.relpath(path, ROOT)


# ------------------------------------------------------------------------------------------
# What the server defines, read from its source text.

def server_metrics():
    """(names, histogram names, label names) from server/metrics.cc."""
    src = read(os.path.join(ROOT, "server", "metrics.cc"))
    names, histograms = set(), set()
    for kind, name in re.findall(r'Build(Counter|Gauge|Histogram)\(\)\s*\.Name\("([a-zA-Z_:][a-zA-Z0-9_:]*)"\)', src):
        names.add(name)
        if kind == "Histogram":
            histograms.add(name)
    labels = set(re.findall(r'\{"([a-z_]+)",', src)) | set(re.findall(r'\w\["([a-z_]+)"\]\s*=', src))
    if len(names) < 10 or not histograms or "model" not in labels:
        fail("could not read the metric definitions of server/metrics.cc (found %d names)" % len(names))
    return names, histograms, labels


def bleu_order():
    m = re.search(r"constexpr\s+int\s+kBleuOrder\s*=\s*(\d+)", read(os.path.join(ROOT, "text", "bleu.h")))
    return int(m.group(1)) if m else None


def server_config_value(text, field):
    m = re.search(r"^\s*%s:\s*\"?([^\"\n]+)\"?" % field, text, re.M)
    return m.group(1).strip() if m else None


# ------------------------------------------------------------------------------------------
# Expressions used by the deployment files.

def rule_exprs(text, where):
    """[(where, expr)] of a Prometheus rule file, without a YAML parser: `expr:` either
    inline (a trailing `# comment` removed) or a block scalar `expr: |`."""
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, rest = len(m.group(1)), m.group(2)
        if rest.startswith("|") or rest.startswith(">"):
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            out.append((where, "\n".join(block).strip()))
        else:
            out.append((where, re.sub(r"\s+#.*$", "", rest).strip().strip("'\"")))
            i += 1
    return out


def recorded_names(text):
    return set(re.findall(r"^\s*-?\s*record:\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))


def dashboard_files():
    return sorted(glob.glob(os.path.join(GRAFANA, "dashboards", "*.json")))


def dashboard_exprs(board, where):
    """[(where, expr)] of every panel target and query variable, and [(where, legend)]."""
    exprs, legends = [], []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(board.get("panels", [])):
        for t in p.get("targets", []):
            w = "%s panel '%s' %s" % (where, p.get("title"), t.get("refId"))
            if "expr" in t:
                exprs.append((w, t["expr"]))
            if t.get("legendFormat"):
                legends.append((w, t["legendFormat"]))
    for v in board.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q
            exprs.append(("%s variable $%s" % (where, v.get("name")), q))
    return exprs, legends


# ------------------------------------------------------------------------------------------
# Static checks.

METRIC_RE = re.compile(r"(?<![\w:])(mixserve[_:][a-zA-Z0-9_:]*)")
GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
MATCHER_RE = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")
LABEL_VALUES_RE = re.compile(r"label_values\((?:[^,()]*(?:\{[^}]*\})?\s*,)?\s*([a-zA-Z_]\w*)\s*\)")


def check_expr(where, expr, names, histograms, labels, recorded):
    if not expr.strip():
        fail("%s: empty query" % where)
        return
    for name in METRIC_RE.findall(expr):
        if ":" in name:
            if name not in recorded:
                fail("%s: recording rule %s is not defined in %s" % (where, name, rel(RULES)))
            continue
        if name in names:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base != name and base in histograms:
            continue
        fail("%s: metric %s is not defined in server/metrics.cc" % (where, name))
    # Label names: groupings, matchers (inside {...}) and label_values(..., label).
    used = set()
    for group in GROUPING_RE.findall(expr):
        used |= {x.strip() for x in group.split(",") if x.strip()}
    for selector in re.findall(r"\{([^{}]*)\}", expr):
        used |= set(MATCHER_RE.findall(selector))
    used |= set(LABEL_VALUES_RE.findall(expr))
    allowed = labels | TARGET_LABELS | {"le", "__name__"}
    for label in sorted(used - allowed):
        fail("%s: label '%s' is not one the server exports" % (where, label))
    for order in re.findall(r'\border\s*=\s*"([^"]*)"', expr):
        if not order.isdigit() or not 1 <= int(order) <= (bleu_order() or 4):
            fail("%s: order=\"%s\" is not an n-gram order the server exports" % (where, order))


def check_dashboards(names, histograms, labels, recorded):
    files = dashboard_files()
    if len(files) < 2:
        fail("expected the serving and A/B dashboards in %s" % rel(os.path.join(GRAFANA, "dashboards")))
    sys.path.insert(0, GRAFANA)
    sys.dont_write_bytecode = True  # nothing written into the source tree
    try:
        import generate_dashboards  # noqa: E402  (the generator of the committed JSON)
        generated = generate_dashboards.boards()
    finally:
        sys.path.pop(0)
    if sorted(generated) != sorted(os.path.basename(f) for f in files):
        fail("dashboards/ holds %s, the generator writes %s" %
             (sorted(os.path.basename(f) for f in files), sorted(generated)))
    all_exprs = []
    for path in files:
        where = rel(path)
        try:
            board = json.loads(read(path))
        except ValueError as e:
            fail("%s does not parse as JSON: %s" % (where, e))
            continue
        name = os.path.basename(path)
        if name in generated and read(path) != generate_dashboards.render(generated[name]):
            fail("%s differs from what generate_dashboards.py writes: run it again" % where)
        for key in ("uid", "title", "panels", "templating"):
            if key not in board:
                fail("%s: no '%s'" % (where, key))
        ids = [p.get("id") for p in board.get("panels", [])]
        if len(ids) != len(set(ids)) or None in ids:
            fail("%s: panel ids are missing or repeated" % where)
        var_names = {v.get("name") for v in board.get("templating", {}).get("list", [])}
        if "datasource" not in var_names:
            fail("%s: no datasource variable" % where)
        for p in board.get("panels", []):
            g = p.get("gridPos", {})
            if g.get("x", 0) + g.get("w", 0) > 24:
                fail("%s panel '%s': wider than the 24-column grid" % (where, p.get("title")))
            if p.get("type") != "row" and p.get("datasource", {}).get("uid") != "${datasource}":
                fail("%s panel '%s': does not use the $datasource variable" % (where, p.get("title")))
        exprs, legends = dashboard_exprs(board, where)
        if not exprs:
            fail("%s: no queries" % where)
        for w, e in exprs:
            check_expr(w, e, names, histograms, labels, recorded)
            for var in re.findall(r"\$(\w+)", e):
                if not var.startswith("__") and var not in var_names:
                    fail("%s: uses $%s, which is not a dashboard variable" % (w, var))
        for w, legend in legends:
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
                if label not in labels | TARGET_LABELS | {"le"}:
                    fail("%s: legend uses label '%s' the server does not export" % (w, label))
        all_exprs += exprs
    text = "\n".join(e for _, e in all_exprs)
    # The panels the issue asks for, by the metrics they need.
    for metric, what in (("mixserve_request_duration_seconds_bucket", "latency percentiles"),
                         ("mixserve_sentences_total", "sentences/s"),
                         ("mixserve_output_tokens_total", "tokens/s"),
                         ("mixserve_requests_total", "error rate by status"),
                         ("mixserve_queue_depth", "queue depth"),
                         ("mixserve_batch_size_bucket", "batch size"),
                         ("mixserve_device_memory_bytes", "device memory"),
                         ("mixserve_model_state", "model state"),
                         ("mixserve_bleu_matching_ngrams_total", "corpus BLEU")):
        if metric not in text:
            fail("no dashboard panel uses %s (%s)" % (metric, what))
    return all_exprs


def check_rules(names, histograms, labels):
    text = read(RULES)
    recorded = recorded_names(text)
    exprs = rule_exprs(text, rel(RULES))
    if len(exprs) < 8:
        fail("%s: found only %d expressions" % (rel(RULES), len(exprs)))
    for w, e in exprs:
        check_expr(w, e, names, histograms, labels, recorded)
    for alert in ("MixserveHighErrorRate", "MixserveLatencySLO", "MixserveBleuBelowPeer",
                  "MixserveBleuBelowFloor"):
        if "alert: " + alert not in text:
            fail("%s: no %s alert" % (rel(RULES), alert))
    # The PrometheusRule of deploy/k8s holds the same groups.
    pr = read(os.path.join(K8S, "prometheusrule.yaml"))
    spec = pr[pr.index("\nspec:\n") + len("\nspec:\n"):] if "\nspec:\n" in pr else ""
    dedented = "".join(l[2:] if l.startswith("  ") else l for l in spec.splitlines(True))
    if dedented.strip() != text[text.index("groups:"):].strip():
        fail("deploy/k8s/prometheusrule.yaml: spec.groups is not a copy of %s" % rel(RULES))
    adapter = read(os.path.join(K8S, "prometheus-adapter-rules.yaml"))
    for q in re.findall(r"(?:seriesQuery|metricsQuery):\s*'([^']*)'", adapter):
        check_expr("deploy/k8s/prometheus-adapter-rules.yaml", re.sub(r"<<[^>]*>>", "", q),
                   names, histograms, labels, recorded)
    hpa = read(os.path.join(K8S, "hpa.yaml"))
    for metric in re.findall(r"metric:\s*\n\s*name:\s*(\S+)", hpa):
        if metric not in names:
            fail("deploy/k8s/hpa.yaml: metric %s is not defined in server/metrics.cc" % metric)
        if "as: \"%s\"" % metric not in adapter:
            fail("deploy/k8s/hpa.yaml: metric %s is not exposed by prometheus-adapter-rules.yaml" % metric)
    return recorded, exprs


def check_consistency():
    pbtxt_path = os.path.join(DEPLOY, "server-container.pbtxt")
    pbtxt = read(pbtxt_path)
    listen = server_config_value(pbtxt, "listen_address")
    metrics = server_config_value(pbtxt, "metrics_address")
    grace = server_config_value(pbtxt, "drain_grace_seconds")
    repo = server_config_value(pbtxt, "model_repository")
    if not (listen and metrics and grace and repo):
        fail("%s: listen_address, metrics_address, drain_grace_seconds and model_repository must be set"
             % rel(pbtxt_path))
        return
    grpc_port, metrics_port, grace = listen.rsplit(":", 1)[1], metrics.rsplit(":", 1)[1], int(grace)

    cm = read(os.path.join(K8S, "configmap.yaml"))
    m = re.search(r"server\.pbtxt: \|\n((?:    .*\n|\n)*)", cm)
    embedded = "".join(l[4:] if l.startswith("    ") else l for l in m.group(1).splitlines(True)) if m else ""
    if embedded.strip() != pbtxt.strip():
        fail("deploy/k8s/configmap.yaml: server.pbtxt is not a copy of %s" % rel(pbtxt_path))

    dep = read(os.path.join(K8S, "deployment.yaml"))
    tgps = re.search(r"terminationGracePeriodSeconds:\s*(\d+)", dep)
    pre = re.search(r"preStop:\s*\n\s*exec:\s*\n\s*command:\s*\[\"sleep\",\s*\"(\d+)\"\]", dep)
    if not tgps or not pre:
        fail("deploy/k8s/deployment.yaml: terminationGracePeriodSeconds or the preStop sleep not found")
    elif int(tgps.group(1)) < int(pre.group(1)) + grace + 5:
        fail("deploy/k8s/deployment.yaml: terminationGracePeriodSeconds %s < preStop %s + drain grace %d + 5"
             % (tgps.group(1), pre.group(1), grace))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        m = re.search(r"%s:\s*\n\s*grpc:\s*\n\s*port:\s*(\d+)" % probe, dep)
        if not m:
            fail("deploy/k8s/deployment.yaml: %s is not a native grpc probe" % probe)
        elif m.group(1) != grpc_port:
            fail("deploy/k8s/deployment.yaml: %s probes port %s, the server listens on %s"
                 % (probe, m.group(1), grpc_port))
    if "nvidia.com/gpu" not in dep:
        fail("deploy/k8s/deployment.yaml: no nvidia.com/gpu request")
    for port in (grpc_port, metrics_port):
        if "containerPort: %s" % port not in dep:
            fail("deploy/k8s/deployment.yaml: containerPort %s missing" % port)

    # The readiness probe, Envoy's health check and the server's health service names agree.
    server_cc = read(os.path.join(ROOT, "server", "server.cc"))
    services = set(re.findall(r'"(mixserve\.v1\.\w+Service)"', server_cc))
    envoy = read(os.path.join(K8S, "envoy.yaml"))
    for where, text, pattern in (("deployment.yaml", dep, r"service:\s*(\S+)"),
                                 ("envoy.yaml", envoy, r"service_name:\s*(\S+)")):
        for name in re.findall(pattern, text):
            if name not in services:
                fail("deploy/k8s/%s: health service %s is not one the server reports (%s)"
                     % (where, name, ", ".join(sorted(services))))

    docker = read(os.path.join(ROOT, "Dockerfile"))
    hc = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD \[([^\]]*)\]", docker)
    if not hc or "health" not in hc.group(1) or ":%s" % grpc_port not in hc.group(1):
        fail("Dockerfile: HEALTHCHECK must run `mixserve-cli --target=...:%s health`" % grpc_port)
    if "EXPOSE %s %s" % (grpc_port, metrics_port) not in docker:
        fail("Dockerfile: EXPOSE %s %s missing" % (grpc_port, metrics_port))
    if "USER " not in docker or re.search(r"^USER\s+(root|0)\b", docker, re.M):
        fail("Dockerfile: the runtime image must run as a non-root USER")
    # LibTorch takes whatever libblas.so.3 the image has: the runtime must carry OpenBLAS, as
    # scripts/bootstrap.sh does, or CPU decoding falls back to the reference BLAS.
    # The stages after `build` install the runtime packages (deps) and carry their libraries
    # into the final image (runtime), which checks that libblas.so.3 is OpenBLAS.
    after_build = "".join(re.split(r"^FROM ", docker, flags=re.M)[2:])
    if "libopenblas0-openmp" not in after_build:
        fail("Dockerfile: the runtime image must install libopenblas0-openmp (LibTorch's BLAS)")
    if "libopenblas" not in docker.split(" AS runtime", 1)[-1]:
        fail("Dockerfile: the runtime stage must check that libblas.so.3 is OpenBLAS")
    if "libopenblas0-openmp" not in read(os.path.join(ROOT, "scripts", "bootstrap.sh")):
        fail("scripts/bootstrap.sh: libopenblas0-openmp (LibTorch's BLAS) is not installed")
    if "/opt/mixserve/models" != repo:
        fail("%s: model_repository must be /opt/mixserve/models (where the images put models)"
             % rel(pbtxt_path))

    compose = read(os.path.join(DEPLOY, "compose", "docker-compose.yml"))
    m = re.search(r"stop_grace_period:\s*(\d+)s", compose)
    if not m or int(m.group(1)) <= grace:
        fail("docker-compose.yml: stop_grace_period must exceed drain_grace_seconds (%d)" % grace)
    prom = read(os.path.join(PROM_DIR, "prometheus.yml"))
    if "mixserve:%s" % metrics_port not in prom:
        fail("prometheus.yml: does not scrape mixserve:%s" % metrics_port)
    # The server's flags named in the images and manifests exist in server/main.cc.
    flags = set(re.findall(r"ABSL_FLAG\(\s*[\w:]+\s*,\s*(\w+)\s*,", read(os.path.join(ROOT, "server", "main.cc"))))
    for path in [os.path.join(ROOT, "Dockerfile"), os.path.join(DEPLOY, "Dockerfile.cuda"),
                 os.path.join(DEPLOY, "compose", "docker-compose.yml"), os.path.join(K8S, "deployment.yaml")]:
        if not os.path.exists(path):
            fail("%s is missing" % rel(path))
            continue
        for flag in re.findall(r'"--(\w+)=', read(path)):
            if flag not in flags and flag not in ("target", "deadline-ms"):
                fail("%s: --%s is not a flag of mixserve-server (%s)" % (rel(path), flag, ", ".join(sorted(flags))))


def check_yaml():
    """Every YAML file parses and holds what its place needs, when PyYAML is installed (it is
    not part of the standard library: skipped with a note otherwise)."""
    try:
        import yaml
    except ImportError:
        print("note: PyYAML not installed; YAML structure checks skipped (the regex checks above still ran)")
        return
    files = sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yml"), recursive=True) +
                   glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True))
    docs = {}
    for path in files:
        try:
            docs[path] = [d for d in yaml.safe_load_all(read(path)) if d is not None]
        except yaml.YAMLError as e:
            fail("%s does not parse as YAML: %s" % (rel(path), e))
    kinds = {}
    for path, ds in docs.items():
        if path.startswith(K8S + os.sep):
            for d in ds:
                if "kind" in d:
                    kinds.setdefault(d["kind"], []).append(d)
                    if d["kind"] not in ("Namespace", "Kustomization") and d.get("metadata", {}).get("namespace") != "mixserve":
                        fail("%s: %s %s is not in namespace mixserve" % (rel(path), d["kind"], d.get("metadata", {}).get("name")))
                for k, v in (d.get("data") or {}).items() if d.get("kind") == "ConfigMap" else []:
                    if k.endswith((".yaml", ".yml")):
                        try:
                            yaml.safe_load(v)
                        except yaml.YAMLError as e:
                            fail("%s: ConfigMap key %s does not parse as YAML: %s" % (rel(path), k, e))
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
                 "ServiceMonitor", "PrometheusRule", "Kustomization"):
        if kind not in kinds:
            fail("deploy/k8s: no %s" % kind)
    services = [d for d in kinds.get("Service", [])]
    if not any(d["spec"].get("clusterIP") == "None" for d in services):
        fail("deploy/k8s: no headless Service")
    # kustomization lists files that exist.
    for d in kinds.get("Kustomization", []):
        for r in d.get("resources", []):
            if not os.path.exists(os.path.join(K8S, r)):
                fail("deploy/k8s/kustomization.yaml: resource %s does not exist" % r)
    # The server container: GPU request and limit, probes on the grpc port.
    for d in kinds.get("Deployment", []):
        if d["metadata"]["name"] != "mixserve":
            continue
        c = d["spec"]["template"]["spec"]["containers"][0]
        for part in ("requests", "limits"):
            if "nvidia.com/gpu" not in c.get("resources", {}).get(part, {}):
                fail("deploy/k8s/deployment.yaml: no nvidia.com/gpu in resources.%s" % part)
        sel = d["spec"]["selector"]["matchLabels"]
        tmpl = d["spec"]["template"]["metadata"]["labels"]
        if any(tmpl.get(k) != v for k, v in sel.items()):
            fail("deploy/k8s/deployment.yaml: selector does not match the pod labels")
        for svc in services:
            if svc["spec"]["selector"] != sel and svc["metadata"]["name"].startswith("mixserve") \
                    and svc["metadata"]["name"] != "mixserve-lb":
                fail("deploy/k8s: Service %s does not select the server pods" % svc["metadata"]["name"])
    # Rules: the PrometheusRule's groups equal the rule file's.
    rules = docs.get(RULES, [{}])[0]
    for d in kinds.get("PrometheusRule", []):
        if d["spec"] != rules:
            fail("deploy/k8s/prometheusrule.yaml: spec differs from %s" % rel(RULES))
    # Compose: mounted folders exist; Grafana's provisioning points at the mounted dashboards.
    compose_path = os.path.join(DEPLOY, "compose", "docker-compose.yml")
    compose = docs.get(compose_path, [{}])[0]
    mounts = {}
    for name, svc in compose.get("services", {}).items():
        for v in svc.get("volumes", []):
            src, dst = v.split(":")[:2]
            if src.startswith("."):
                if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(compose_path), src))):
                    fail("docker-compose.yml: %s mounts %s, which does not exist" % (name, src))
                mounts[dst] = src
    prov = docs.get(os.path.join(GRAFANA, "provisioning", "dashboards", "mixserve.yml"), [{}])[0]
    for p in prov.get("providers", []):
        if mounts.get(p["options"]["path"]) != "./grafana/dashboards":
            fail("grafana provisioning: %s is not where docker-compose.yml mounts the dashboards" % p["options"]["path"])
    ds = docs.get(os.path.join(GRAFANA, "provisioning", "datasources", "prometheus.yml"), [{}])[0]
    if [d.get("uid") for d in ds.get("datasources", [])] != ["prometheus"]:
        fail("grafana provisioning: the Prometheus data source must have uid 'prometheus' (the dashboards' default)")


def check_server_configs():
    """The server configurations of the images parse as mixserve.v1.ServerConfig (protoc and
    python protobuf, when both are installed)."""
    try:
        from google.protobuf import text_format
    except ImportError:
        print("note: python protobuf not installed; server.pbtxt schema check skipped")
        return
    protoc = shutil.which("protoc")
    if protoc is None:
        print("note: protoc not found; server.pbtxt schema check skipped")
        return
    import importlib.util
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run([protoc, "-I", os.path.join(ROOT, "proto"), "--python_out=" + tmp,
                            os.path.join(ROOT, "proto", "mixserve", "v1", "config.proto")],
                           capture_output=True, text=True)
        if p.returncode != 0:
            fail("protoc cannot compile proto/mixserve/v1/config.proto: " + p.stderr.strip())
            return
        spec = importlib.util.spec_from_file_location(
            "mixserve_deploy_config_pb2", os.path.join(tmp, "mixserve", "v1", "config_pb2.py"))
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # a protobuf runtime too old for the generated code
            print("note: generated config_pb2 does not load (%s); schema check skipped" % e)
            return
    before = len(failures)
    for path in (os.path.join(DEPLOY, "server-container.pbtxt"), os.path.join(DEPLOY, "server.pbtxt")):
        config = module.ServerConfig()
        try:
            text_format.Parse(read(path), config)
        except text_format.ParseError as e:
            fail("%s is not a valid mixserve.v1.ServerConfig: %s" % (rel(path), e))
            continue
        if path.endswith("server-container.pbtxt") and (config.models or config.routes):
            fail("%s: the images serve whatever repository they get: no models or routes" % rel(path))
    if len(failures) == before:
        print("ok: server configurations parse as mixserve.v1.ServerConfig")


def check_stage_models():
    """deploy/docker/stage-models.sh (the image's model repository) on a scratch tree: copies
    shipped models, refuses MODELS=shipped without models and unknown modes. The training path
    needs a build and is not run here."""
    script = os.path.join(DEPLOY, "docker", "stage-models.sh")
    bash = shutil.which("bash")
    if bash is None:
        print("note: bash not found; stage-models.sh not run")
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(os.path.join(src, "models", "en-de-base", "1"))
        with open(os.path.join(src, "models", "en-de-base", "1", "model.pbtxt"), "w") as f:
            f.write("source_language: \"en\"\n")
        empty = os.path.join(tmp, "empty")
        os.makedirs(os.path.join(empty, "models"))

        def run(cwd, mode, dest):
            env = dict(os.environ, MODELS=mode)
            p = subprocess.run([bash, script, dest, os.path.join(tmp, "no-build")], cwd=cwd, env=env,
                               capture_output=True, text=True)
            return p.returncode, (p.stdout + p.stderr).strip()

        for mode in ("auto", "shipped"):
            dest = os.path.join(tmp, "out-" + mode)
            code, out = run(src, mode, dest)
            if code != 0 or not os.path.exists(os.path.join(dest, "en-de-base", "1", "model.pbtxt")):
                fail("stage-models.sh MODELS=%s did not copy the shipped models (exit %d): %s" % (mode, code, out))
        code, out = run(empty, "none", os.path.join(tmp, "out-none"))
        if code != 0 or os.listdir(os.path.join(tmp, "out-none")):
            fail("stage-models.sh MODELS=none should leave an empty repository (exit %d): %s" % (code, out))
        code, out = run(empty, "shipped", os.path.join(tmp, "out-missing"))
        if code != 1 or "models/" not in out:
            fail("stage-models.sh MODELS=shipped without models should fail naming models/ (exit %d): %s" % (code, out))
        code, out = run(src, "bogus", os.path.join(tmp, "out-bogus"))
        if code != 2 or "bogus" not in out:
            fail("stage-models.sh MODELS=bogus should fail naming the mode (exit %d): %s" % (code, out))
        else:
            print("ok: stage-models.sh")


def check_container_files():
    """deploy/container_check.sh parses and mounts the admin token where server-container.pbtxt
    reads it, as compose and Kubernetes do; deploy/docker/collect-libs.sh copies a real ldd
    closure. The container check itself needs a Docker daemon and many minutes: not run here."""
    bash = shutil.which("bash")
    script = os.path.join(DEPLOY, "container_check.sh")
    text = read(script)
    if not os.access(script, os.X_OK):
        fail("deploy/container_check.sh is not executable")
    if bash and subprocess.run([bash, "-n", script]).returncode != 0:
        fail("deploy/container_check.sh: bash -n reports a syntax error")
    token = server_config_value(read(os.path.join(DEPLOY, "server-container.pbtxt")), "admin_token_file")
    if not token:
        fail("deploy/server-container.pbtxt: admin_token_file must be set (administration closed)")
        return
    m = re.search(r"^SECRET_PATH=(\S+)", text, re.M)
    if not m or m.group(1) != token:
        fail("deploy/container_check.sh: SECRET_PATH must be %s (admin_token_file)" % token)
    secret_dir, secret_name = token.rsplit("/", 1)
    compose = read(os.path.join(DEPLOY, "compose", "docker-compose.yml"))
    # Compose mounts a secret NAME at /run/secrets/NAME.
    if secret_dir != "/run/secrets" or not re.search(r"^    secrets:\n      - %s$" % re.escape(secret_name),
                                                     compose, re.M) \
            or not re.search(r"^  %s:\n    file:" % re.escape(secret_name), compose, re.M):
        fail("deploy/compose/docker-compose.yml: secret %s is not given to mixserve at %s"
             % (secret_name, token))
    dep = read(os.path.join(K8S, "deployment.yaml"))
    if not re.search(r"mountPath: %s\n" % re.escape(secret_dir), dep) \
            or not re.search(r"secretName: %s\n(?:.*\n)*?\s+path: %s\n" % (re.escape(secret_name),
                                                                        re.escape(secret_name)), dep):
        fail("deploy/k8s/deployment.yaml: Secret %s is not mounted at %s" % (secret_name, token))

    collect = os.path.join(DEPLOY, "docker", "collect-libs.sh")
    elf = os.path.realpath(shutil.which("true") or "/bin/true")
    if bash is None or shutil.which("ldd") is None:
        print("note: bash or ldd not found; collect-libs.sh not run")
        return
    with tempfile.TemporaryDirectory() as tmp:
        empty_list = os.path.join(tmp, "base-none.txt")
        open(empty_list, "w").close()
        p = subprocess.run([bash, collect, os.path.join(tmp, "all"), empty_list, elf],
                           capture_output=True, text=True)
        got = sorted(os.listdir(os.path.join(tmp, "all"))) if p.returncode == 0 else []
        if "libc.so.6" not in got:
            fail("collect-libs.sh did not copy libc.so.6 of %s (exit %d): %s %s"
                 % (elf, p.returncode, got, p.stderr.strip()))
            return
        base_list = os.path.join(tmp, "base-all.txt")
        with open(base_list, "w") as f:
            f.write("\n".join(got) + "\n")
        p = subprocess.run([bash, collect, os.path.join(tmp, "none"), base_list, elf],
                           capture_output=True, text=True)
        if p.returncode != 0 or os.listdir(os.path.join(tmp, "none")):
            fail("collect-libs.sh copied libraries the base list names (exit %d): %s"
                 % (p.returncode, p.stderr.strip()))
        else:
            print("ok: collect-libs.sh")


def run_static():
    names, histograms, labels = server_metrics()
    if bleu_order() != 4:
        fail("text/bleu.h: kBleuOrder is %s; the BLEU queries average over the orders the server exports, "
             "check them" % bleu_order())
    recorded, _ = check_rules(names, histograms, labels)
    check_dashboards(names, histograms, labels, recorded)
    check_consistency()
    check_yaml()
    check_server_configs()
    check_stage_models()
    check_container_files()


# ------------------------------------------------------------------------------------------
# promtool checks.

def promtool(*args, cwd=None):
    p = subprocess.run(["promtool"] + list(args), cwd=cwd, capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


def substitute(expr, window):
    """A dashboard query as Prometheus would get it from Grafana with every variable at All."""
    expr = expr.replace("$__range", window).replace("$__rate_interval", "1m")
    expr = expr.replace("$bleu_window", window)
    return re.sub(r"\$(\w+)", ".*", expr)


def sacrebleu_reference():
    """Per-sentence statistics and corpus scores of sacreBLEU (tests/text/data)."""
    path = os.path.join(ROOT, "tests", "text", "data", "bleu_expected.tsv")
    sentences, corpus = {}, {}
    for line in read(path).split("\n"):
        f = line.split("\t")
        if f[0] == "sentence":
            sentences[int(f[1])] = ([int(x) for x in f[3].split()], [int(x) for x in f[4].split()],
                                    int(f[5]), int(f[6]))
        elif f[0] == "corpus":
            corpus[f[1]] = (float(f[2]), [int(x) for x in f[3].split()], [int(x) for x in f[4].split()],
                            int(f[5]), int(f[6]))
    return path, sentences, corpus


def bleu_promtool_test(dashboard_exprs_found, tmp):
    """Feeds two variants' BLEU counters with the per-sentence statistics of two sacreBLEU
    subsets (one sentence every 20 s, as the server would count them) and checks that the
    dashboard's corpus BLEU queries and the mixserve:bleu:score_1h rule give sacreBLEU's
    corpus score of each subset (within 1e-4 BLEU)."""
    path, sentences, corpus = sacrebleu_reference()
    n = len(sentences)
    subsets = {"first_half": [i for i in range(n) if i < n // 2],      # as in scripts/bleu_reference.py
               "every_third": [i for i in range(n) if i % 3 == 0]}
    variants = {"first_half": ("en-de-base", "1"), "every_third": ("en-de-alr", "2")}
    series = []
    steps = 0
    for subset, idx in subsets.items():
        if subset not in corpus:
            fail("%s: no corpus line for subset %s" % (rel(path), subset))
            return
        stats = [sentences[i + 1] for i in idx]
        score, c_match, c_total, c_hyp, c_ref = corpus[subset]
        sums = ([sum(s[0][k] for s in stats) for k in range(4)], [sum(s[1][k] for s in stats) for k in range(4)],
                sum(s[2] for s in stats), sum(s[3] for s in stats))
        if sums != (c_match, c_total, c_hyp, c_ref):
            fail("%s: the sentence statistics of subset %s do not add up to its corpus line" % (rel(path), subset))
            return
        if min(c_match) == 0:
            fail("subset %s has an order without matches: smoothing would matter" % subset)
            return
        model, version = variants[subset]
        targets = [("mixserve_bleu", 'model="%s",version="%s",source_language="en",target_language="de"'
                    % (model, version))]
        if subset == "first_half":
            # The same statistics as a shadow's agreement with its primary.
            targets.append(("mixserve_shadow_bleu", 'model="%s",version="%s",shadow_model="en-de-alr",'
                            'shadow_version="2"' % (model, version)))

        def cumulative(values):
            out, acc = ["0"], 0
            for v in values:
                acc += v
                out.append(str(acc))
            return " ".join(out)
        for prefix, labels in targets:
            sentences_name = ("mixserve_shadow_sentences_total" if "shadow" in prefix
                              else "mixserve_bleu_sentences_total")
            series.append(("%s{%s}" % (sentences_name, labels), cumulative([1] * len(stats))))
            for k in range(4):
                o = '%s,order="%d"' % (labels, k + 1)
                series.append(("%s_matching_ngrams_total{%s}" % (prefix, o), cumulative([s[0][k] for s in stats])))
                series.append(("%s_hypothesis_ngrams_total{%s}" % (prefix, o), cumulative([s[1][k] for s in stats])))
            series.append(("%s_hypothesis_length_total{%s}" % (prefix, labels), cumulative([s[2] for s in stats])))
            series.append(("%s_reference_length_total{%s}" % (prefix, labels), cumulative([s[3] for s in stats])))
        steps = max(steps, len(stats))
    # All sentences fall within the last hour at the evaluation time.
    eval_s = steps * 20
    if eval_s >= 3600:
        fail("too many sentences for one hour at 20 s each")
        return

    # (where, query, expected samples' labels)
    pair = ',source_language="en",target_language="de"'
    expected = {s: '{model="%s",version="%s"%s}' % (variants[s][0], variants[s][1], pair) for s in subsets}
    queries = [("rule mixserve:bleu:score_1h", "mixserve:bleu:score_1h", list(expected.values()))]
    for where, e in dashboard_exprs_found:
        if "reference_length_total" in e and "exp(" in e:
            if "mixserve_shadow_bleu_matching_ngrams_total" in e:
                queries.append((where, substitute(e, "1h"),
                                ['{model="en-de-base",version="1",shadow_model="en-de-alr",shadow_version="2"}']))
            elif "mixserve_bleu_matching_ngrams_total" in e:
                queries.append((where, substitute(e, "1h"), list(expected.values())))
    if len(queries) < 4:
        fail("expected the corpus BLEU and shadow BLEU queries of the A/B dashboard (found %d)" % (len(queries) - 1))
    # sacreBLEU's score of each variant as a vector labelled by model and version.
    scores = " or ".join('label_replace(label_replace(vector(%r), "model", "%s", "", ""), "version", "%s", "", "")'
                         % (corpus[s][0], variants[s][0], variants[s][1]) for s in subsets)
    tests = [{"expr": "abs((%s) - on (model, version) group_left () (%s)) < bool 0.0001" % (q, scores),
              "eval_time": "%ds" % eval_s, "exp_samples": [{"labels": l, "value": 1} for l in labels]}
             for _, q, labels in queries]
    test_file = os.path.join(tmp, "bleu_test.yml")
    rules_copy = os.path.join(tmp, "mixserve.rules.yml")
    shutil.copy(RULES, rules_copy)
    with open(test_file, "w", encoding="utf-8") as f:
        # JSON is YAML: no YAML writer needed.
        json.dump({"rule_files": ["mixserve.rules.yml"], "evaluation_interval": "20s",
                   "tests": [{"interval": "20s",
                              "input_series": [{"series": s, "values": v} for s, v in series],
                              "promql_expr_test": tests}]},
                  f, indent=1)
    code, out = promtool("test", "rules", "bleu_test.yml", cwd=tmp)
    if code != 0:
        fail("corpus BLEU queries do not reproduce sacreBLEU's corpus scores (%s):\n%s"
             % ("; ".join(w for w, _, _ in queries), out))
    else:
        print("ok: %d corpus BLEU queries reproduce sacreBLEU's scores %s"
              % (len(queries), ", ".join("%s %.4f" % (s, corpus[s][0]) for s in subsets)))


def run_promtool():
    if shutil.which("promtool") is None:
        print("SKIP: promtool not found (Debian package `prometheus`); promtool checks not run")
        return SKIP
    for args, cwd in ((["check", "config", "prometheus.yml"], PROM_DIR),
                      (["check", "rules", "mixserve.rules.yml"], PROM_DIR),
                      (["test", "rules", "rules_test.yml"], PROM_DIR)):
        code, out = promtool(*args, cwd=cwd)
        if code != 0:
            fail("promtool %s failed:\n%s" % (" ".join(args), out))
        else:
            print("ok: promtool %s" % " ".join(args))
    names, histograms, labels = server_metrics()
    all_exprs = []
    for path in dashboard_files():
        exprs, _ = dashboard_exprs(json.loads(read(path)), rel(path))
        all_exprs += exprs
    with tempfile.TemporaryDirectory() as tmp:
        # Syntax of every dashboard query: as recording rules of a scratch rule file.
        rules = ["groups:", "  - name: dashboards", "    rules:"]
        for i, (_, e) in enumerate(all_exprs):
            if e.startswith("label_values("):
                continue
            rules.append("      - record: dashboard_query_%d" % i)
            rules.append("        expr: %s" % json.dumps(substitute(e, "1h")))
        with open(os.path.join(tmp, "dashboards.rules.yml"), "w", encoding="utf-8") as f:
            f.write("\n".join(rules) + "\n")
        code, out = promtool("check", "rules", "dashboards.rules.yml", cwd=tmp)
        if code != 0:
            fail("dashboard queries do not parse:\n%s" % out)
        else:
            print("ok: %d dashboard queries parse" % ((len(rules) - 3) // 2))
        bleu_promtool_test(all_exprs, tmp)
    return 0


def main(argv):
    mode = argv[1] if len(argv) > 1 else "static"
    if mode == "static":
        run_static()
        result = 0
    elif mode == "promtool":
        result = run_promtool()
    else:
        print("usage: check_deploy.py static|promtool", file=sys.stderr)
        return 2
    if failures:
        print("%d problem(s)" % len(failures))
        return 1
    if result == SKIP:
        return SKIP
    print("all %s checks passed" % mode)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
