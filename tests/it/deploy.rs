//! deploy/ and the image's configuration agree with herald: the compose file and every Kubernetes manifest parse,
//! the files they mount exist, the configurations load, ports and probes reach herald's listen address and health
//! endpoints, stop grace periods cover herald's drain, and the admin token comes from the secret they mount.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald::config::{Settings, StorageBackend, parse_duration};
use yaml_rust2::{Yaml, YamlLoader};

use crate::harness::Herald;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every YAML document of the file.
fn documents(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn text<'a>(value: &'a Yaml, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {value:?}"))
}

fn list<'a>(value: &'a Yaml, what: &str) -> &'a [Yaml] {
    value
        .as_vec()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {value:?}"))
}

fn number(value: &Yaml, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {value:?}"))
}

/// A configuration as herald loads it (embedded default, then `yaml`), with each container path of `files` (a file
/// the configuration names, such as a mounted secret) replaced by a local file holding the given content.
fn load(yaml: &str, name: &str, dir: &Path, files: &[(&str, &str)]) -> Settings {
    let mut yaml = yaml.to_owned();
    for (index, (container_path, content)) in files.iter().enumerate() {
        assert!(
            yaml.contains(container_path),
            "{name} does not name {container_path}"
        );
        let local = dir.join(format!("mounted-{index}"));
        std::fs::write(&local, content).unwrap();
        yaml = yaml.replace(container_path, local.to_str().unwrap());
    }
    herald::config::load_str(&yaml, name)
        .unwrap_or_else(|errors| panic!("{name} does not load:\n{errors}"))
        .settings
}

fn store_path(settings: &Settings) -> PathBuf {
    let StorageBackend::Sqlite { path } = &settings.storage.backend;
    path.clone()
}

/// How long herald may take to stop: requests in flight, then deliveries in flight.
fn drain(settings: &Settings) -> Duration {
    settings.server.shutdown_timeout + settings.delivery.drain_timeout
}

/// Runs herald on `settings` (on a free port, with a temporary store) and checks that each path answers 200 and
/// that the operator API takes `token` and refuses requests without it.
async fn serves(mut settings: Settings, paths: &[&str], token: &str) {
    let dir = tempfile::tempdir().unwrap();
    settings.storage.backend = StorageBackend::Sqlite {
        path: dir.path().join("herald.db"),
    };
    let herald = Herald::start(settings).await;
    for path in paths {
        assert_eq!(herald.get(path).await.status(), 200, "{path}");
    }
    let deliveries = herald.url("/api/herald/v1/deliveries");
    assert_eq!(herald.get("/api/herald/v1/deliveries").await.status(), 401);
    let allowed = herald
        .client
        .get(&deliveries)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    herald.stop().await;
}

#[test]
fn image_configuration_listens_everywhere_stores_in_the_volume_and_stops_in_time() {
    let dockerfile = read(&repo().join("Dockerfile"));
    for line in [
        "config/container.yaml /out/herald.yaml",
        "COPY --from=build /out/herald.yaml /etc/herald/herald.yaml",
        "VOLUME [\"/var/lib/herald\"]",
        "EXPOSE 9095",
        "USER 65532:65532",
    ] {
        assert!(dockerfile.contains(line), "the Dockerfile lacks {line:?}");
    }
    let settings = herald::config::load(Some(&repo().join("config/container.yaml")))
        .unwrap_or_else(|errors| panic!("config/container.yaml does not load:\n{errors}"))
        .settings;
    assert_eq!(settings.server.listen.to_string(), "0.0.0.0:9095");
    assert!(store_path(&settings).starts_with("/var/lib/herald/"));
    assert!(
        drain(&settings) < Duration::from_secs(10),
        "herald must stop within docker stop's default 10 s"
    );
}

#[tokio::test]
async fn compose_publishes_on_loopback_mounts_its_configuration_and_takes_the_token_from_a_secret()
{
    let deploy = repo().join("deploy");
    let compose = documents(&deploy.join("compose.yaml"));
    let compose = &compose[0];
    let service = &compose["services"]["herald"];
    assert!(!service.is_badvalue(), "compose.yaml has no herald service");

    let mut container_ports = Vec::new();
    for port in list(&service["ports"], "ports") {
        let port = text(port, "ports[]");
        let parts: Vec<&str> = port.split(':').collect();
        assert!(
            parts.len() == 3 && parts[0] == "127.0.0.1",
            "{port:?} is not published on 127.0.0.1 only"
        );
        container_ports.push(parts[2].parse::<u16>().unwrap());
    }

    let mut config = None;
    let mut data = None;
    for volume in list(&service["volumes"], "volumes") {
        let volume = text(volume, "volumes[]");
        let parts: Vec<&str> = volume.split(':').collect();
        match parts[1] {
            "/etc/herald/herald.yaml" => config = Some(deploy.join(parts[0])),
            "/var/lib/herald" => data = Some(parts[0]),
            _ => {}
        }
    }
    let config = config.expect("compose.yaml mounts no /etc/herald/herald.yaml");
    assert!(config.is_file(), "{} is missing", config.display());
    let data = data.expect("compose.yaml mounts nothing at /var/lib/herald");
    assert!(
        !compose["volumes"][data].is_badvalue(),
        "volume {data} is not declared"
    );

    let secrets = list(&service["secrets"], "secrets");
    assert_eq!(secrets.len(), 1);
    let secret = text(&secrets[0], "secrets[]");
    let file = text(&compose["secrets"][secret]["file"], "secret file");
    let file = file.strip_prefix("./").unwrap_or(file);
    for ignore in [".gitignore", ".dockerignore"] {
        let dir = Path::new("deploy").join(file);
        let dir = dir.parent().unwrap().to_str().unwrap();
        assert!(
            read(&repo().join(ignore)).contains(dir),
            "{ignore} does not keep {dir} out"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let token = "compose-token";
    let mounted = format!("/run/secrets/{secret}");
    let settings = load(
        &read(&config),
        "deploy/herald.yaml",
        dir.path(),
        &[(&mounted, token)],
    );
    assert!(settings.server.listen.ip().is_unspecified());
    assert_eq!(container_ports, [settings.server.listen.port()]);
    assert!(store_path(&settings).starts_with("/var/lib/herald/"));
    let grace = parse_duration(text(&service["stop_grace_period"], "stop_grace_period")).unwrap();
    assert!(grace > drain(&settings), "stop_grace_period is too short");
    serves(settings, &["/-/healthy", "/-/ready"], token).await;
}

/// Kubernetes objects by kind.
fn manifests() -> HashMap<String, Vec<Yaml>> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut objects: HashMap<String, Vec<Yaml>> = HashMap::new();
    for file in files {
        for object in documents(&file) {
            let what = file.display().to_string();
            text(&object["apiVersion"], &format!("{what}: apiVersion"));
            text(
                &object["metadata"]["name"],
                &format!("{what}: metadata.name"),
            );
            let kind = text(&object["kind"], &format!("{what}: kind")).to_owned();
            objects.entry(kind).or_default().push(object);
        }
    }
    objects
}

fn one<'a>(objects: &'a HashMap<String, Vec<Yaml>>, kind: &str, name: &str) -> &'a Yaml {
    objects
        .get(kind)
        .into_iter()
        .flatten()
        .find(|object| object["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The volume mounted at `dir` in `container`, from the pod's volumes.
fn volume_at<'a>(pod: &'a Yaml, container: &Yaml, dir: &Path) -> &'a Yaml {
    let mount = list(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|mount| Path::new(text(&mount["mountPath"], "mountPath")) == dir)
        .unwrap_or_else(|| panic!("nothing is mounted at {}", dir.display()));
    let name = text(&mount["name"], "volumeMounts[].name");
    list(&pod["volumes"], "volumes")
        .iter()
        .find(|volume| volume["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("volume {name} is not in the pod"))
}

#[tokio::test]
async fn kubernetes_manifests_parse_and_their_probes_ports_and_mounts_reach_herald() {
    let objects = manifests();
    let workloads: Vec<&Yaml> = ["StatefulSet", "Deployment"]
        .iter()
        .filter_map(|kind| objects.get(*kind))
        .flatten()
        .collect();
    assert_eq!(workloads.len(), 1, "one StatefulSet or Deployment");
    let workload = workloads[0];
    assert_eq!(
        number(&workload["spec"]["replicas"], "replicas"),
        1,
        "one process per store"
    );
    let template = &workload["spec"]["template"];
    let pod = &template["spec"];
    let container = list(&pod["containers"], "containers")
        .iter()
        .find(|container| container["name"].as_str() == Some("herald"))
        .expect("no container named herald");

    let mut ports = HashMap::new();
    for port in list(&container["ports"], "ports") {
        let number = number(&port["containerPort"], "containerPort");
        ports.insert(number.to_string(), number);
        if let Some(name) = port["name"].as_str() {
            ports.insert(name.to_owned(), number);
        }
    }
    let resolve = |port: &Yaml| -> i64 {
        match port {
            Yaml::Integer(number) => *number,
            Yaml::String(name) => *ports
                .get(name)
                .unwrap_or_else(|| panic!("no container port {name}")),
            other => panic!("port: {other:?}"),
        }
    };

    // The configuration: the file `serve` reads, from the ConfigMap mounted as its directory.
    let args: Vec<&str> = container["args"]
        .as_vec()
        .map(|args| args.iter().map(|arg| text(arg, "args[]")).collect())
        .unwrap_or_default();
    let config_path = args
        .iter()
        .position(|arg| *arg == "-c" || *arg == "--config")
        .map_or("/etc/herald/herald.yaml", |at| args[at + 1]);
    let config_path = Path::new(config_path);
    let config_volume = volume_at(pod, container, config_path.parent().unwrap());
    let config_map = one(
        &objects,
        "ConfigMap",
        text(&config_volume["configMap"]["name"], "configMap.name"),
    );
    let file_name = config_path.file_name().unwrap().to_str().unwrap();
    let yaml = text(&config_map["data"][file_name], "ConfigMap data");

    // The admin token: the file the configuration names, from the Secret mounted as its directory.
    let config: Vec<Yaml> = YamlLoader::load_from_str(yaml).unwrap();
    let tokens_file = text(
        &config[0]["server"]["admin_tokens_file"],
        "server.admin_tokens_file",
    );
    let tokens_file = Path::new(tokens_file);
    let secret_volume = volume_at(pod, container, tokens_file.parent().unwrap());
    let secret = one(
        &objects,
        "Secret",
        text(&secret_volume["secret"]["secretName"], "secret.secretName"),
    );
    let key = tokens_file.file_name().unwrap().to_str().unwrap();
    let token = text(&secret["stringData"][key], "Secret stringData");

    let dir = tempfile::tempdir().unwrap();
    let settings = load(
        yaml,
        "ConfigMap herald.yaml",
        dir.path(),
        &[(tokens_file.to_str().unwrap(), token)],
    );
    let listen = i64::from(settings.server.listen.port());
    assert!(settings.server.listen.ip().is_unspecified());

    // The store on the claim.
    let claims = list(
        &workload["spec"]["volumeClaimTemplates"],
        "volumeClaimTemplates",
    );
    let store = store_path(&settings);
    let store_dir = store.parent().unwrap();
    let mount = list(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|mount| Path::new(text(&mount["mountPath"], "mountPath")) == store_dir)
        .unwrap_or_else(|| panic!("nothing is mounted at {}", store_dir.display()));
    assert!(
        claims
            .iter()
            .any(|claim| claim["metadata"]["name"].as_str() == mount["name"].as_str()),
        "the store is not on a PersistentVolumeClaim"
    );

    // Probes and the Service reach herald's listen port and health endpoints.
    let mut probed = Vec::new();
    for (probe, path) in [
        ("livenessProbe", "/-/healthy"),
        ("readinessProbe", "/-/ready"),
        ("startupProbe", "/-/healthy"),
    ] {
        let get = &container[probe]["httpGet"];
        if probe == "startupProbe" && container[probe].is_badvalue() {
            continue;
        }
        assert_eq!(text(&get["path"], probe), path, "{probe}");
        assert_eq!(resolve(&get["port"]), listen, "{probe} port");
        probed.push(path);
    }
    let service = objects
        .get("Service")
        .and_then(|services| services.first())
        .expect("no Service");
    let labels = template["metadata"]["labels"].as_hash().unwrap();
    for (name, value) in service["spec"]["selector"].as_hash().unwrap() {
        assert_eq!(
            labels.get(name),
            Some(value),
            "the Service does not select the pods"
        );
    }
    for port in list(&service["spec"]["ports"], "Service ports") {
        assert_eq!(resolve(&port["targetPort"]), listen, "Service targetPort");
    }

    let grace = number(
        &pod["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    assert!(
        Duration::from_secs(grace.try_into().unwrap()) > drain(&settings),
        "terminationGracePeriodSeconds is too short"
    );
    serves(settings, &probed, token).await;
}
