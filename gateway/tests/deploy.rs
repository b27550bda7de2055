//! The deployment files under `deploy/` checked against the gateway itself: every YAML file
//! parses; the gateway configurations they carry (`deploy/gateway.compose.toml`, the
//! `gateway.toml` of the Kubernetes ConfigMap) load with the gateway's own loader and agree
//! with the ports, mounts and probes around them; and every metric and label that the
//! alerting rules and the Grafana dashboard query is one the gateway exports, as read from
//! the `metrics::counter!`/`gauge!`/`histogram!` calls in the gateway's source. No network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mcp_gateway::GatewayConfig;
use mcp_gateway::config::UpstreamTarget;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

/// Series name -> label names, as Prometheus sees them.
type Series = BTreeMap<String, BTreeSet<String>>;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    manifest_dir().parent().expect("the gateway crate sits in the workspace").join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every file under `dir` (recursively) whose name ends in one of `suffixes`, sorted.
fn files_under(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| suffixes.iter().any(|s| n.ends_with(s)))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// All documents of a YAML file, with merge keys (`<<: *anchor`) applied.
fn yaml_docs(path: &Path) -> Vec<Yaml> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            let mut value = Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{}: document {i}: {e}", path.display()));
            value.apply_merge().unwrap_or_else(|e| panic!("{}: document {i}: merge keys: {e}", path.display()));
            value
        })
        .collect()
}

fn yaml_one(path: &Path) -> Yaml {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{}: expected exactly one YAML document", path.display());
    docs.remove(0)
}

fn str_of<'a>(v: &'a Yaml, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, found {v:?}"))
}

fn seq_of<'a>(v: &'a Yaml, what: &str) -> &'a [Yaml] {
    v.as_sequence().map(Vec::as_slice).unwrap_or_else(|| panic!("{what}: expected a list, found {v:?}"))
}

/// The port of a `host:port` address or of a URL's authority.
/// The `mcpt` subcommand of an argument list: the first argument after the global options
/// (`--log-format FORMAT`, and flags such as `--quiet`), if any.
fn subcommand<'a>(args: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a {
            "--log-format" => {
                args.next();
            }
            flag if flag.starts_with('-') => {}
            sub => return Some(sub),
        }
    }
    None
}

fn port_of(addr_or_url: &str) -> u16 {
    let after_scheme = addr_or_url.split_once("://").map_or(addr_or_url, |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let port = authority.rsplit_once(':').map(|(_, p)| p).unwrap_or_else(|| panic!("{addr_or_url}: no port"));
    port.parse().unwrap_or_else(|e| panic!("{addr_or_url}: port {port:?}: {e}"))
}

/// The host of a URL's authority.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

// ---- (a) every YAML file parses ---------------------------------------------------------------

#[test]
fn every_yaml_file_under_deploy_parses() {
    let files = files_under(&deploy_dir(), &[".yml", ".yaml"]);
    let names: Vec<String> =
        files.iter().map(|f| f.strip_prefix(deploy_dir()).unwrap().display().to_string()).collect();
    for expected in [
        "docker-compose.yml",
        "prometheus/gateway-rules.yml",
        "prometheus/prometheus.yml",
        "kubernetes/configmap.yaml",
        "kubernetes/deployment.yaml",
        "kubernetes/service.yaml",
        "kubernetes/hpa.yaml",
    ] {
        assert!(names.iter().any(|n| n == expected), "deploy/{expected} is missing (found {names:?})");
    }
    for file in &files {
        let docs = yaml_docs(file);
        assert!(!docs.is_empty(), "{}: no YAML document", file.display());
        for (i, doc) in docs.iter().enumerate() {
            assert!(doc.is_mapping(), "{}: document {i} is not a mapping", file.display());
        }
    }
}

// ---- (b) the gateway configurations load with the gateway's loader -----------------------------

#[test]
fn the_compose_gateway_config_loads_and_matches_the_compose_file() {
    let dir = deploy_dir();
    let config = GatewayConfig::load(dir.join("gateway.compose.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.upstreams.len() >= 2, "the compose file runs two upstream servers");

    let compose = yaml_one(&dir.join("docker-compose.yml"));
    let services = compose["services"].as_mapping().expect("docker-compose.yml: services");
    let service = |name: &str| services.get(name).unwrap_or_else(|| panic!("docker-compose.yml: no service {name:?}"));
    let command = |name: &str| -> Vec<String> {
        seq_of(&service(name)["command"], &format!("service {name}: command"))
            .iter()
            .map(|a| str_of(a, "command argument").to_owned())
            .collect()
    };

    // Every bind mount's host path exists beside the compose file.
    for (name, svc) in services {
        let name = str_of(name, "service name");
        if let Some(volumes) = svc.get("volumes") {
            for v in seq_of(volumes, &format!("service {name}: volumes")) {
                let v = str_of(v, "volume");
                if let Some(host) = v.split(':').next().filter(|h| h.starts_with("./")) {
                    assert!(dir.join(host).is_file(), "service {name}: mounts {host}, which does not exist in deploy/");
                }
            }
        }
    }

    // The gateway runs with this file as its --config.
    let gw = command("gateway");
    assert_eq!(subcommand(gw.iter().map(String::as_str)), Some("gateway"), "gateway service: command {gw:?}");
    let config_path = gw.iter().skip_while(|a| *a != "--config").nth(1).expect("gateway service: --config FILE");
    let mounts: Vec<&str> =
        seq_of(&service("gateway")["volumes"], "gateway: volumes").iter().map(|v| str_of(v, "volume")).collect();
    assert!(
        mounts.iter().any(|m| m.starts_with("./gateway.compose.toml:") && m.split(':').nth(1) == Some(config_path)),
        "gateway service: gateway.compose.toml must be mounted at {config_path} (mounts {mounts:?})"
    );

    // Its listener and admin ports are published.
    let published: Vec<u16> = seq_of(&service("gateway")["ports"], "gateway: ports")
        .iter()
        .map(|p| str_of(p, "port").rsplit(':').next().unwrap().parse().expect("container port"))
        .collect();
    let admin = config.admin.as_deref().expect("compose config: admin");
    assert!(published.contains(&port_of(admin)), "admin port of {admin} not published ({published:?})");
    for l in &config.listen {
        assert!(published.contains(&port_of(l)), "listener {l} not published ({published:?})");
    }

    // Each upstream is a compose service serving on the same scheme, port and path.
    for u in &config.upstreams {
        let UpstreamTarget::Url(url) = &u.target else { panic!("upstream {}: expected a URL", u.name) };
        let host = host_of(url);
        let args = command(host);
        assert_eq!(subcommand(args.iter().map(String::as_str)), Some("serve"), "service {host}: not `mcpt serve`");
        let listens: Vec<&String> = args.iter().filter(|a| a.contains("://")).collect();
        let same = |l: &&String| {
            let (scheme, _) = l.split_once("://").unwrap();
            let path = |s: &str| s.split_once("://").unwrap().1.split_once('/').map(|(_, p)| p.to_owned());
            url.starts_with(&format!("{scheme}://")) && port_of(l) == port_of(url) && path(l) == path(url)
        };
        assert!(listens.iter().any(same), "upstream {} ({url}): service {host} listens on {listens:?}", u.name);
    }

    // Prometheus mounts the rules file where its configuration looks for it, and scrapes the
    // gateway's admin port.
    let prom_cfg = yaml_one(&dir.join("prometheus/prometheus.yml"));
    let prom_mounts: Vec<&str> =
        seq_of(&service("prometheus")["volumes"], "prometheus: volumes").iter().map(|v| str_of(v, "volume")).collect();
    for rules in seq_of(&prom_cfg["rule_files"], "prometheus.yml: rule_files") {
        let rules = str_of(rules, "rule file");
        assert!(
            prom_mounts
                .iter()
                .any(|m| m.starts_with("./prometheus/gateway-rules.yml:") && m.split(':').nth(1) == Some(rules)),
            "prometheus.yml loads {rules}, which the compose file does not mount ({prom_mounts:?})"
        );
    }
    let targets: Vec<&str> = seq_of(&prom_cfg["scrape_configs"], "scrape_configs")
        .iter()
        .flat_map(|job| seq_of(&job["static_configs"], "static_configs"))
        .flat_map(|sc| seq_of(&sc["targets"], "targets"))
        .map(|t| str_of(t, "target"))
        .collect();
    assert!(
        targets.iter().any(|t| host_of(t) == "gateway" && port_of(t) == port_of(admin)),
        "prometheus.yml does not scrape gateway:{} ({targets:?})",
        port_of(admin)
    );
}

#[test]
fn the_kubernetes_configmap_carries_a_loadable_config_that_matches_the_deployment() {
    let dir = deploy_dir().join("kubernetes");
    let mut by_kind: BTreeMap<String, Vec<Yaml>> = BTreeMap::new();
    for file in files_under(&dir, &[".yaml", ".yml"]) {
        for doc in yaml_docs(&file) {
            let kind = str_of(&doc["kind"], &format!("{}: kind", file.display())).to_owned();
            assert!(doc["apiVersion"].is_string(), "{}: apiVersion", file.display());
            by_kind.entry(kind).or_default().push(doc);
        }
    }
    let one = |kind: &str| -> &Yaml {
        let docs = by_kind.get(kind).unwrap_or_else(|| panic!("deploy/kubernetes: no {kind}"));
        assert_eq!(docs.len(), 1, "deploy/kubernetes: one {kind} expected");
        &docs[0]
    };

    let cm = one("ConfigMap");
    let text = str_of(&cm["data"]["gateway.toml"], "ConfigMap data.gateway.toml");
    let config =
        GatewayConfig::parse(text, "deploy/kubernetes/configmap.yaml (gateway.toml)").unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.upstreams.is_empty(), "the ConfigMap's gateway.toml configures no upstream");
    assert!(!config.allow_anonymous, "the Kubernetes config must not serve anonymous clients");
    let admin_port = port_of(config.admin.as_deref().expect("ConfigMap gateway.toml: admin"));

    let deployment = one("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "pod: runAsNonRoot");
    let containers = seq_of(&pod["containers"], "containers");
    let container = containers
        .iter()
        .find(|c| subcommand(seq_of(&c["args"], "args").iter().filter_map(Yaml::as_str)) == Some("gateway"))
        .expect("a container running `mcpt gateway`");
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "container: readOnlyRootFilesystem");
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false), "container: allowPrivilegeEscalation");
    for r in ["requests", "limits"] {
        for what in ["cpu", "memory"] {
            assert!(container["resources"][r][what].is_string(), "container: resources.{r}.{what}");
        }
    }

    // --config points into the ConfigMap's mount.
    let args: Vec<&str> = seq_of(&container["args"], "args").iter().map(|a| str_of(a, "arg")).collect();
    let config_path = args.iter().skip_while(|a| **a != "--config").nth(1).expect("args: --config FILE");
    let (mount_dir, file_name) = config_path.rsplit_once('/').expect("--config: an absolute path");
    let mount = seq_of(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(mount_dir))
        .unwrap_or_else(|| panic!("no volume mounted at {mount_dir}"));
    let volume = seq_of(&pod["volumes"], "volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the volume of the config mount");
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"], "the config volume is the ConfigMap");
    let items = seq_of(&volume["configMap"]["items"], "configMap items");
    assert!(
        items.iter().any(|i| i["key"].as_str() == Some("gateway.toml") && i["path"].as_str() == Some(file_name)),
        "the ConfigMap key gateway.toml must appear as {file_name}"
    );

    // Ports and probes agree with `admin` and `listen`.
    let ports: BTreeMap<&str, u64> = seq_of(&container["ports"], "ports")
        .iter()
        .map(|p| (str_of(&p["name"], "port name"), p["containerPort"].as_u64().expect("containerPort")))
        .collect();
    assert_eq!(ports.get("admin").copied(), Some(u64::from(admin_port)), "container port admin vs config admin");
    for l in &config.listen {
        assert!(ports.values().any(|p| *p == u64::from(port_of(l))), "listener {l}: no container port");
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}: path");
        let port = get["port"].as_str().expect("probe port by name");
        assert_eq!(ports.get(port).copied(), Some(u64::from(admin_port)), "{probe}: port {port} is not admin");
    }
    // Every bearer_token_env of the config is set in the container.
    let env: BTreeSet<&str> = seq_of(&container["env"], "env").iter().map(|e| str_of(&e["name"], "env name")).collect();
    for u in &config.upstreams {
        if let Some(var) = &u.bearer_token_env {
            assert!(env.contains(var.as_str()), "upstream {}: {var} is not in the container's env", u.name);
        }
    }

    // The Service targets named container ports; the autoscaler scales this Deployment on CPU.
    for p in seq_of(&one("Service")["spec"]["ports"], "Service ports") {
        let target = str_of(&p["targetPort"], "Service targetPort");
        assert!(ports.contains_key(target), "Service targetPort {target} is not a container port");
    }
    let hpa = one("HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"]);
    assert!(
        seq_of(&hpa["spec"]["metrics"], "HPA metrics").iter().any(|m| m["resource"]["name"].as_str() == Some("cpu")),
        "the HPA scales on CPU"
    );
}

#[test]
fn the_dockerfile_runs_mcpt_as_non_root_and_exposes_the_configured_ports() {
    let text = read(&deploy_dir().join("Dockerfile"));
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    assert!(lines.contains(&r#"ENTRYPOINT ["mcpt"]"#), "ENTRYPOINT [\"mcpt\"]");
    assert!(lines.iter().any(|l| l.contains("cargo build --release -p mcpt --locked")), "the release build");
    let user = lines.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "the image runs as {user}");
    let exposed: BTreeSet<u16> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace())
        .map(|p| p.split('/').next().unwrap().parse().expect("EXPOSE port"))
        .collect();
    let compose = GatewayConfig::load(deploy_dir().join("gateway.compose.toml")).unwrap_or_else(|e| panic!("{e}"));
    let admin = port_of(compose.admin.as_deref().unwrap());
    assert!(exposed.contains(&admin), "EXPOSE {exposed:?} lacks the admin port {admin}");
    for l in &compose.listen {
        assert!(exposed.contains(&port_of(l)), "EXPOSE {exposed:?} lacks the listener port of {l}");
    }
    // The HEALTHCHECK instruction (with its continuation lines), if the image has one.
    if let Some(i) = text.find("\nHEALTHCHECK ") {
        let h: String = text[i..].lines().take(3).collect();
        assert!(h.contains("/healthz") && h.contains(&admin.to_string()), "HEALTHCHECK must probe /healthz on {admin}");
    }
}

// ---- (c) metric names and labels ----------------------------------------------------------------

/// The series the gateway exports, read from its source: every `counter!`, `gauge!` and
/// `histogram!` call with its label keys. Histograms given buckets (`Matcher::Full`) are
/// exported as `_bucket{le}`, `_sum`, `_count`; others as summaries (`{quantile}`, `_sum`,
/// `_count`). Prometheus adds `job` and `instance` to every scraped series.
fn exported_series() -> Series {
    let mut sources = String::new();
    for file in files_under(&manifest_dir().join("src"), &[".rs"]) {
        sources.push_str(&read(&file));
        sources.push('\n');
    }
    let bucketed: BTreeSet<String> = sources
        .match_indices("Matcher::Full(")
        .filter_map(|(i, _)| string_literals(&sources[i..]).into_iter().next().map(|(s, _)| s))
        .collect();
    let mut series = Series::new();
    for kind in ["counter!(", "gauge!(", "histogram!("] {
        for (i, _) in sources.match_indices(kind) {
            let args = balanced(&sources[i + kind.len() - 1..]);
            let literals = string_literals(args);
            let Some((name, _)) = literals.first() else { panic!("{kind} without a literal metric name: {args}") };
            let labels: BTreeSet<String> = literals
                .iter()
                .filter(|(_, is_key)| *is_key)
                .map(|(s, _)| s.clone())
                .chain(["job".to_owned(), "instance".to_owned()])
                .collect();
            let with = |extra: &str| labels.iter().cloned().chain([extra.to_owned()]).collect::<BTreeSet<_>>();
            let mut add = |n: String, l: BTreeSet<String>| series.entry(n).or_default().extend(l);
            match kind {
                "histogram!(" if bucketed.contains(name) => {
                    add(format!("{name}_bucket"), with("le"));
                    add(format!("{name}_sum"), labels.clone());
                    add(format!("{name}_count"), labels.clone());
                }
                "histogram!(" => {
                    add(name.clone(), with("quantile"));
                    add(format!("{name}_sum"), labels.clone());
                    add(format!("{name}_count"), labels.clone());
                }
                _ => add(name.clone(), labels),
            }
        }
    }
    series
}

/// The text from an opening parenthesis to its matching close (strings skipped).
fn balanced(text: &str) -> &str {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..=i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {:?}", &text[..text.len().min(200)])
}

/// The string literals of a Rust macro's arguments, each with whether `=>` follows it (a
/// label key) — up to the end of the first balanced parenthesis group.
fn string_literals(text: &str) -> Vec<(String, bool)> {
    let args = balanced(text);
    let mut out = Vec::new();
    let mut rest = args;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let end = after.find('"').expect("closing quote");
        let literal = after[..end].to_owned();
        rest = &after[end + 1..];
        out.push((literal, rest.trim_start().starts_with("=>")));
    }
    out
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str,
    Num,
    Var,
    Punct(char),
}

/// Tokens of a PromQL expression (Grafana's `$variables` become [`Tok::Var`]).
fn lex(expr: &str) -> Vec<Tok> {
    let chars: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' && c != '`' { 2 } else { 1 };
            }
            assert!(i < chars.len(), "unterminated string in {expr:?}");
            i += 1;
            toks.push(Tok::Str);
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            toks.push(Tok::Var);
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Num);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    toks
}

const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "avg",
    "avg_over_time",
    "bottomk",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count",
    "count_over_time",
    "count_values",
    "delta",
    "deriv",
    "exp",
    "floor",
    "group",
    "histogram_quantile",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "predict_linear",
    "present_over_time",
    "quantile",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev",
    "stddev_over_time",
    "stdvar",
    "sum",
    "sum_over_time",
    "time",
    "timestamp",
    "topk",
    "vector",
];
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"];

/// Series that are not the gateway's but may be queried: Prometheus' own `up` of a scrape job.
fn scrape_series() -> Series {
    Series::from([("up".to_owned(), ["job", "instance"].map(str::to_owned).into())])
}

/// Checks one PromQL expression: every metric is exported, every label matcher and grouping
/// label is a label of the series involved, every function is a known one. Returns the
/// metrics used; appends problems (prefixed with `place`) to `problems`.
fn check_promql(expr: &str, place: &str, known: &Series, problems: &mut Vec<String>) -> BTreeSet<String> {
    let toks = lex(expr);
    let mut used = BTreeSet::new();
    let mut grouping = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let call = toks.get(i + 1) == Some(&Tok::Punct('('));
        match &toks[i] {
            Tok::Ident(w) if GROUPING.contains(&w.as_str()) => {
                i += 1;
                if toks.get(i) == Some(&Tok::Punct('(')) {
                    i += 1;
                    while i < toks.len() && toks[i] != Tok::Punct(')') {
                        if let Tok::Ident(label) = &toks[i] {
                            grouping.push(label.clone());
                        }
                        i += 1;
                    }
                }
            }
            Tok::Ident(w) if KEYWORDS.contains(&w.as_str()) || FUNCTIONS.contains(&w.as_str()) => i += 1,
            Tok::Ident(w) if call => {
                problems.push(format!("{place}: unknown function {w}() in {expr}"));
                i += 1;
            }
            Tok::Ident(metric) => {
                used.insert(metric.clone());
                let labels = known.get(metric);
                if labels.is_none() {
                    problems.push(format!("{place}: {metric} is not a metric the gateway exports, in {expr}"));
                }
                i += 1;
                if toks.get(i) == Some(&Tok::Punct('{')) {
                    i += 1;
                    while i < toks.len() && toks[i] != Tok::Punct('}') {
                        if let Tok::Ident(label) = &toks[i]
                            && let Some(labels) = labels
                            && !labels.contains(label)
                        {
                            problems.push(format!("{place}: {metric} has no label {label:?} (it has {labels:?})"));
                        }
                        i += 1;
                    }
                }
            }
            Tok::Punct('{') => {
                problems.push(format!("{place}: a selector without a metric name in {expr}"));
                i += 1;
            }
            _ => i += 1,
        }
    }
    let available: BTreeSet<&String> = used.iter().filter_map(|m| known.get(m)).flatten().collect();
    for label in grouping {
        if !available.contains(&label) {
            problems.push(format!("{place}: grouping label {label:?} is on none of {used:?}"));
        }
    }
    if used.is_empty() {
        problems.push(format!("{place}: no metric in {expr}"));
    }
    used
}

#[test]
fn the_source_scan_finds_the_documented_metrics() {
    let series = exported_series();
    // The metrics listed in observe.rs's module documentation are all found in the code.
    let doc = read(&manifest_dir().join("src/observe.rs"));
    let documented: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with("//!"))
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .filter(|s| s.starts_with("mcp_gateway_"))
        .map(|s| s.split('{').next().unwrap().to_owned())
        .collect();
    assert!(documented.len() >= 6, "observe.rs documents {documented:?}");
    for name in &documented {
        let found = series.contains_key(name) || series.contains_key(&format!("{name}_bucket"));
        assert!(found, "observe.rs documents {name}, which no metrics macro records (found {series:?})");
    }
    assert!(series["mcp_gateway_request_duration_seconds_bucket"].contains("le"), "the latency histogram has buckets");
}

#[test]
fn alerting_rules_use_only_exported_metrics_and_are_well_formed() {
    let mut known = exported_series();
    known.extend(scrape_series());
    let rules = yaml_one(&deploy_dir().join("prometheus/gateway-rules.yml"));
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    for group in seq_of(&rules["groups"], "groups") {
        let gname = str_of(&group["name"], "group name");
        for rule in seq_of(&group["rules"], &format!("group {gname}: rules")) {
            let name = str_of(&rule["alert"], &format!("group {gname}: a rule without alert"));
            assert!(alerts.insert(name.to_owned()), "alert {name} defined twice");
            let expr = str_of(&rule["expr"], &format!("alert {name}: expr"));
            used.extend(check_promql(expr, &format!("alert {name}"), &known, &mut problems));
            if let Some(d) = rule.get("for") {
                let d = str_of(d, "for");
                let (n, unit) = d.split_at(d.len() - 1);
                assert!(
                    n.parse::<u32>().is_ok() && "smhdwy".contains(unit),
                    "alert {name}: for {d:?} is not a duration"
                );
            }
            let severity = str_of(&rule["labels"]["severity"], &format!("alert {name}: labels.severity"));
            assert!(["critical", "warning", "info"].contains(&severity), "alert {name}: severity {severity}");
            assert!(rule["annotations"]["summary"].is_string(), "alert {name}: annotations.summary");
            for (key, text) in rule["annotations"].as_mapping().expect("annotations").iter() {
                let text = str_of(text, "annotation");
                assert_eq!(text.matches("{{").count(), text.matches("}}").count(), "alert {name}: {key:?} template");
            }
        }
    }
    assert!(problems.is_empty(), "problems in gateway-rules.yml:\n{}", problems.join("\n"));
    // `up{job="…"}` names a scrape job of deploy/prometheus/prometheus.yml.
    let prom_cfg = yaml_one(&deploy_dir().join("prometheus/prometheus.yml"));
    let jobs: BTreeSet<&str> = seq_of(&prom_cfg["scrape_configs"], "scrape_configs")
        .iter()
        .map(|j| str_of(&j["job_name"], "job_name"))
        .collect();
    let text = read(&deploy_dir().join("prometheus/gateway-rules.yml"));
    for (i, _) in text.match_indices("up{job=\"") {
        let job = text[i + 8..].split('"').next().unwrap_or_default();
        assert!(jobs.contains(job), "gateway-rules.yml selects job {job:?}; prometheus.yml has {jobs:?}");
    }
    for needed in [
        "mcp_gateway_requests_total",
        "mcp_gateway_request_duration_seconds_bucket",
        "mcp_gateway_result_tokens_estimate_total",
        "mcp_gateway_principal_result_tokens_estimate_total",
        "mcp_gateway_principal_token_budget",
        "mcp_gateway_principal_token_budget_spent",
        "mcp_gateway_circuit_breaker_state",
        "mcp_gateway_rate_limited_total",
        "mcp_gateway_upstream_up",
    ] {
        assert!(used.contains(needed), "no alerting rule uses {needed}");
    }
}

/// Every `expr` of the dashboard's targets, with where it is.
fn dashboard_exprs(value: &Json, place: &str, out: &mut Vec<(String, String)>) {
    match value {
        Json::Object(map) => {
            let here = map.get("title").and_then(Json::as_str).map_or(place.to_owned(), |t| format!("panel {t:?}"));
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Json::String(e)) => out.push((here.clone(), e.clone())),
                    ("templating", _) => {}
                    _ => dashboard_exprs(v, &here, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, place, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_uses_only_exported_metrics_through_its_datasource_variable() {
    let known = exported_series();
    let path = deploy_dir().join("grafana/gateway-dashboard.json");
    let dash: Json = serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();

    let vars = dash["templating"]["list"].as_array().expect("templating.list");
    let ds = vars.iter().find(|v| v["type"] == "datasource").expect("a datasource variable");
    assert_eq!(ds["query"], "prometheus", "the datasource variable lists Prometheus data sources");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let name = v["name"].as_str().unwrap_or("?");
        assert_eq!(v["datasource"]["uid"], ds_ref.as_str(), "variable {name}: datasource");
        let q = v["query"]["query"].as_str().or(v["query"].as_str()).expect("variable query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: expected label_values(metric, label), got {q}"));
        let (selector, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
        let metrics = check_promql(selector, &format!("variable {name}"), &known, &mut problems);
        let label = label.trim();
        if !metrics.iter().filter_map(|m| known.get(m)).any(|l| l.contains(label)) {
            problems.push(format!("variable {name}: {metrics:?} has no label {label:?}"));
        }
        used.extend(metrics);
    }

    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "panel id of {title:?} repeated");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "panel {title:?}: datasource");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {title:?}: targets"));
        assert!(!targets.is_empty(), "panel {title:?} has no target");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], ds_ref.as_str(), "panel {title:?}: target datasource");
        }
    }
    let mut exprs = Vec::new();
    dashboard_exprs(&dash["panels"], "dashboard", &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has {} queries", exprs.len());
    for (place, expr) in &exprs {
        used.extend(check_promql(expr, place, &known, &mut problems));
    }
    assert!(problems.is_empty(), "problems in gateway-dashboard.json:\n{}", problems.join("\n"));

    // Every metric family the gateway exports has a panel.
    for name in known.keys().filter(|n| !n.ends_with("_sum") && !n.ends_with("_count")) {
        assert!(used.contains(name), "the dashboard shows nothing of {name}");
    }
}

#[test]
fn the_promql_checker_rejects_what_it_should() {
    let known = exported_series();
    let mut problems = Vec::new();
    let used = check_promql(
        r#"sum by (upstream) (rate(mcp_gateway_requests_total{outcome!="ok", upstream=~"$upstream"}[$__rate_interval]))"#,
        "good",
        &known,
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(used, BTreeSet::from(["mcp_gateway_requests_total".to_owned()]));
    for (bad, why) in [
        ("rate(mcp_gateway_request_total[5m])", "not a metric the gateway exports"),
        (r#"rate(mcp_gateway_requests_total{principal="a"}[5m])"#, "has no label \"principal\""),
        ("sum by (principal) (rate(mcp_gateway_requests_total[5m]))", "grouping label \"principal\""),
        ("mcp_gateway_request_duration_seconds", "not a metric the gateway exports"),
        ("rat(mcp_gateway_requests_total[5m])", "unknown function"),
        (r#"{__name__="x"}"#, "without a metric name"),
    ] {
        let mut problems = Vec::new();
        check_promql(bad, "bad", &known, &mut problems);
        assert!(problems.iter().any(|p| p.contains(why)), "{bad}: expected {why:?}, got {problems:?}");
    }
}
