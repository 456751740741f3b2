//! The runtime image is real: built from the top-level Dockerfile by Debian's docker.io (a
//! dockerd this test starts: vfs storage, no iptables, no bridge, its own data-root and socket
//! in a temporary directory), on an offline base (the suite's debootstrapped bookworm, imported
//! with `docker import`) with the test's houba binary as the `prebuilt` input. The container
//! then does what the houba-apply CronJob of deploy/base does: the policy repository is cloned
//! from a local `git daemon` into the layout git-sync leaves (`/git/current` → a worktree), and
//! `houba apply --auto`, with the CronJob's own arguments, environment and houba.toml, places
//! the images into a loopback docker-registry; a second run has nothing to do, the drift
//! CronJob's container finds no drift, and the blast-radius CronJob's container finds every
//! image apply placed. It runs as uid 65532 with a read-only root filesystem.

mod build_support;
mod deploy_support;
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deploy_support::{command_of, deploy, documents, find, render, repo, run_ok, tool};
use serde_json::Value;
use support::houba::{Policy, push_upstream, tag_digests};
use support::{Auth, distribution, ferro, free_port};

const IMAGE: &str = "houba:deploy-test";
const BASE: &str = "houba-offline-base:bookworm";
/// What the offline base leaves out of the debootstrapped rootfs (as `make image-offline`).
const SLIM_EXCLUDES: &[&str] = &[
    "./usr/share/doc",
    "./usr/share/man",
    "./usr/share/info",
    "./usr/share/locale",
    "./var/cache/apt",
    "./var/lib/apt/lists",
];

/// A dockerd of this test's own; stopped (SIGTERM, then SIGKILL) and removed on drop.
struct Dockerd {
    child: Child,
    docker: PathBuf,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dockerd = tool("dockerd", "apt-get install docker.io");
        // Debian's docker CLI (same package as dockerd): it builds with the BuildKit built
        // into dockerd. A newer CLI elsewhere on PATH would insist on the buildx plugin.
        let docker = ["/usr/bin/docker"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| tool("docker", "apt-get install docker.io"));
        // Short path: the socket must fit in sun_path.
        let dir = tempfile::Builder::new()
            .prefix("hdk")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("docker.sock");
        std::fs::write(dir.path().join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .arg(format!("--data-root={}", dir.path().join("data").display()))
            .arg(format!("--exec-root={}", dir.path().join("exec").display()))
            .arg(format!(
                "--pidfile={}",
                dir.path().join("dockerd.pid").display()
            ))
            .arg(format!(
                "--config-file={}",
                dir.path().join("daemon.json").display()
            ))
            .arg(format!("--host=unix://{}", socket.display()))
            .args([
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip6tables=false",
            ])
            .args(["--bridge=none", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let d = Dockerd {
            child,
            docker,
            socket,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = d
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .output();
            if matches!(&up, Ok(o) if o.status.success()) {
                break;
            }
            let exited = d.log_if_exited();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "dockerd did not start (it needs root, cgroups and a kernel that allows \
                     mounts; this test never skips). dockerd log:\n{}",
                    exited.unwrap_or_else(|| d.log())
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    fn log_if_exited(&self) -> Option<String> {
        let pid = self.child.id();
        let alive = Path::new(&format!("/proc/{pid}/status")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .contains("State:\tZ");
        (!alive).then(|| self.log())
    }

    /// `docker -H unix://…` (BuildKit on).
    fn docker(&self) -> Command {
        let mut c = Command::new(&self.docker);
        c.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CONFIG", self.dir.path().join("client"));
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                self.unmount_leftovers();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.unmount_leftovers();
    }
}

impl Dockerd {
    /// Mounts dockerd leaves under its directories (the network namespace bind mount),
    /// deepest first, so that the temporary directory can be removed.
    fn unmount_leftovers(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let root = self.dir.path().to_string_lossy().into_owned();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = Command::new("umount").args(["-l", point]).status();
        }
    }
}

/// A `git daemon` on 127.0.0.1 serving the bare repositories under `base`; killed on drop.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        // git-daemon itself, not `git daemon`: the wrapper would leave it running when killed.
        let git = tool("git", "apt-get install git");
        let exec_path = run_ok(Command::new(git).arg("--exec-path"));
        let exec_path = String::from_utf8_lossy(&exec_path.stdout)
            .trim()
            .to_string();
        let port = free_port();
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--listen=127.0.0.1", "--reuseaddr", "--export-all"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Quiet: the readiness probe below connects and hangs up, which git-daemon logs.
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon { child, port }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path) -> Command {
    let mut c = Command::new(tool("git", "apt-get install git"));
    c.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .args([
            "-c",
            "user.name=houba test",
            "-c",
            "user.email=test@houba.invalid",
        ]);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_runs_the_cronjob_against_a_git_checkout_and_a_loopback_registry() {
    let started = Instant::now();
    let mut timings = vec![];
    let lap = |what: &str, timings: &mut Vec<String>| {
        timings.push(format!("{what}: {:.1}s", started.elapsed().as_secs_f64()));
    };

    // The CronJob as deploy/base renders it: what the container must be run with.
    let base = documents(&render(&deploy().join("base")));
    let pod =
        &find(&base, "CronJob", "houba-apply")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let settings = &find(&base, "ConfigMap", "houba-settings")["data"];
    let houba_toml = base
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["houba.toml"].is_string())
        .expect("the houba.toml ConfigMap")["data"]["houba.toml"]
        .as_str()
        .unwrap()
        .to_string();
    let mount = |volume: &str| {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap_or_else(|| panic!("houba mounts no {volume}"))["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let vars = [
        ("SHARD_COUNT", settings["SHARD_COUNT"].as_str().unwrap()),
        ("POLICY_PATH", settings["POLICY_PATH"].as_str().unwrap()),
        ("JOB_COMPLETION_INDEX", "0"),
    ];
    let (args, mut env) = command_of(container, &vars);
    let drift_container = &find(&base, "CronJob", "houba-drift")["spec"]["jobTemplate"]["spec"]["template"]
        ["spec"]["containers"][0];
    assert_eq!(drift_container["volumeMounts"], container["volumeMounts"]);
    let (drift_args, mut drift_env) = command_of(drift_container, &vars);
    // The blast-radius CronJob's container, asked about what apply will place.
    let blast_container = &find(&base, "CronJob", "houba-blast-radius")["spec"]["jobTemplate"]["spec"]
        ["template"]["spec"]["containers"][0];
    assert_eq!(blast_container["volumeMounts"], container["volumeMounts"]);
    let mut blast_vars = vars.to_vec();
    blast_vars.extend([
        ("BLAST_RADIUS_QUERY", "--policy=busybox"),
        ("BLAST_RADIUS_FORMAT", "json"),
    ]);
    let (blast_args, mut blast_env) = command_of(blast_container, &blast_vars);

    // Registries: upstream (stands in for docker.io) and the destination, a docker-registry.
    let upstream = ferro().await;
    for tag in ["1.36.0", "1.36.1", "1.37.0", "1.38.0-rc1"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let destination = distribution(Auth::None).await;
    let roster = serde_json::json!({
        "upstream": {"host": upstream.host(), "tls_verify": false, "mirror_of": "docker.io"},
        "local": {"host": destination.host(), "tls_verify": false},
    });
    env.push(("HOUBA_REGISTRIES".into(), roster.to_string()));
    drift_env.push(("HOUBA_REGISTRIES".into(), roster.to_string()));
    blast_env.push(("HOUBA_REGISTRIES".into(), roster.to_string()));

    // The policy repository, served by git daemon, checked out as git-sync v4 leaves it.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join(vars[1].1)).unwrap();
    let mut policy = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "local");
    policy.aliases = vec!["{major}.{minor}".into()];
    std::fs::write(src.join(vars[1].1).join("busybox.yaml"), policy.yaml()).unwrap();
    run_ok(git(&src).args(["init", "-q", "-b", "main"]));
    run_ok(git(&src).args(["add", "."]));
    run_ok(git(&src).args(["commit", "-q", "-m", "busybox"]));
    let served = work.path().join("srv");
    std::fs::create_dir_all(&served).unwrap();
    run_ok(
        git(work.path())
            .args(["clone", "-q", "--bare"])
            .arg(&src)
            .arg(served.join("policies.git")),
    );
    let daemon = GitDaemon::start(&served);
    let url = format!("git://127.0.0.1:{}/policies.git", daemon.port);
    let out = run_ok(git(work.path()).args(["ls-remote", &url, "refs/heads/main"]));
    let commit = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("main on the git daemon")
        .to_string();
    let git_root = work.path().join("git");
    let worktree = git_root.join(".worktrees").join(&commit);
    run_ok(
        git(work.path())
            .args(["clone", "-q", "--depth=1", "--branch=main", &url])
            .arg(&worktree),
    );
    std::os::unix::fs::symlink(format!(".worktrees/{commit}"), git_root.join("current")).unwrap();
    let config_dir = work.path().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("houba.toml"), &houba_toml).unwrap();
    // The PersistentVolumeClaim: writable by the pod's fsGroup 65532.
    let cache = work.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    run_ok(Command::new("chown").arg("65532:65532").arg(&cache));
    lap("registries and git checkout", &mut timings);

    // Build the image.
    let dockerd = Dockerd::start();
    lap("dockerd up", &mut timings);
    let rootfs = build_support::debian::rootfs();
    lap("debootstrapped bookworm (cached)", &mut timings);
    // Without documentation, locales and apt's caches, as slim Debian images are: every
    // container start copies the whole image with the vfs driver.
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(SLIM_EXCLUDES.iter().map(|e| format!("--exclude={e}")))
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar runs");
    run_ok(
        dockerd
            .docker()
            .args(["import", "-", BASE])
            .stdin(tar.stdout.take().unwrap()),
    );
    assert!(
        tar.wait().unwrap().success(),
        "tar of {} failed",
        rootfs.display()
    );
    lap("docker import of the base", &mut timings);
    let prebuilt = repo().join("target/docker/houba");
    std::fs::create_dir_all(prebuilt.parent().unwrap()).unwrap();
    run_ok(
        Command::new(tool("strip", "apt-get install binutils"))
            .arg("-o")
            .arg(&prebuilt)
            .arg(env!("CARGO_BIN_EXE_houba")),
    );
    run_ok(
        dockerd
            .docker()
            .args(["build", "--build-arg", &format!("RUNTIME_IMAGE={BASE}")])
            .args([
                "--build-arg",
                "BINARY=prebuilt",
                "--build-arg",
                "REVISION=test-revision",
            ])
            .args(["--build-arg", "SOURCE=https://example.invalid/houba"])
            .args(["-t", IMAGE])
            .arg(repo()),
    );
    lap("docker build", &mut timings);

    let out = run_ok(dockerd.docker().args(["image", "inspect", IMAGE]));
    let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "65532:65532");
    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.revision"], "test-revision");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://example.invalid/houba"
    );
    let size = inspect[0]["Size"].as_u64().unwrap();

    // `docker run` as the CronJob's pod would run it.
    let docker_run = |entrypoint: Option<&str>, args: &[String], env: &[(String, String)]| {
        let mut c = dockerd.docker();
        c.args([
            "run",
            "--rm",
            "--network=host",
            "--read-only",
            "--user=65532:65532",
        ])
        .args(["--tmpfs", &format!("{}:rw,size=64m", mount("tmp"))])
        .arg(format!(
            "--volume={}:{}:ro",
            git_root.display(),
            mount("git")
        ))
        .arg(format!(
            "--volume={}:{}:ro",
            config_dir.display(),
            mount("config")
        ))
        .arg(format!("--volume={}:{}", cache.display(), mount("cache")));
        for (k, v) in env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        if let Some(e) = entrypoint {
            c.arg(format!("--entrypoint={e}"));
        }
        c.arg(IMAGE).args(args);
        // Blocking on this worker while the in-process upstream registry serves on the others.
        tokio::task::block_in_place(|| c.output().expect("docker run"))
    };

    // uid 65532 and a read-only root filesystem (the offline base has a shell to ask).
    let probe = docker_run(
        Some("/bin/sh"),
        &["-c".into(), "id -u; id -g; touch /probe".into()],
        &env,
    );
    let stdout = String::from_utf8_lossy(&probe.stdout);
    let stderr = String::from_utf8_lossy(&probe.stderr);
    assert!(
        !probe.status.success(),
        "the root filesystem is writable:\n{stdout}{stderr}"
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["65532", "65532"],
        "{stderr}"
    );
    assert!(stderr.contains("Read-only file system"), "{stderr}");

    let first = docker_run(None, &args, &env);
    let report_text = String::from_utf8_lossy(&first.stdout).into_owned();
    let log = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(
        first.status.success(),
        "houba apply in the container failed ({}):\n{report_text}\n{log}\n{}",
        first.status,
        dockerd.log()
    );
    lap("first apply", &mut timings);
    let report: Value = serde_json::from_str(&report_text).expect("a JSON run report");
    let results = report["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .filter(|r| r["action"] == "copy" && r["outcome"] == "done")
            .count(),
        3,
        "{report:#}"
    );
    // Logs are JSON lines (HOUBA_LOG_FORMAT=json from the CronJob).
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && serde_json::from_str::<Value>(l).is_ok()),
        "no JSON log line on stderr:\n{log}"
    );
    let placed = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    let tags: Vec<&str> = placed.keys().map(String::as_str).collect();
    assert_eq!(
        tags,
        ["1.36", "1.36.0", "1.36.1", "1.37", "1.37.0"],
        "{placed:?}"
    );
    assert_eq!(placed["1.37"], placed["1.37.0"]);

    // The cache was written by uid 65532, in the shard's own directory.
    let shard_cache = env
        .iter()
        .find(|(k, _)| k == "HOUBA_CACHE_DIR")
        .unwrap()
        .1
        .strip_prefix(&format!("{}/", mount("cache")))
        .expect("HOUBA_CACHE_DIR on the cache volume")
        .to_string();
    let shard_dir = cache.join(&shard_cache);
    let entries: Vec<_> = walk(&shard_dir);
    assert!(
        !entries.is_empty(),
        "nothing cached in {}",
        shard_dir.display()
    );
    for e in &entries {
        assert_eq!(
            std::fs::metadata(e).unwrap().uid(),
            65532,
            "{}",
            e.display()
        );
    }

    // The next hourly run: nothing to do, nothing uploaded.
    let second = docker_run(None, &args, &env);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "second apply failed:\n{stderr}");
    lap("second apply", &mut timings);
    let report: Value = serde_json::from_slice(&second.stdout).expect("a JSON run report");
    assert_eq!(report["results"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["bytes_uploaded"], 0, "{report:#}");
    assert!(stderr.contains("No changes."), "{stderr}");
    assert_eq!(
        tag_digests(destination.client().as_ref(), "mirror/busybox").await,
        placed
    );

    // The drift CronJob's container on the same checkout: nothing changed outside houba.
    let drift = docker_run(None, &drift_args, &drift_env);
    let stderr = String::from_utf8_lossy(&drift.stderr);
    assert_eq!(
        drift.status.code(),
        Some(0),
        "drift:\n{}\n{stderr}",
        String::from_utf8_lossy(&drift.stdout)
    );
    lap("drift", &mut timings);
    let drift_report: Value = serde_json::from_slice(&drift.stdout).expect("drift JSON");
    assert_eq!(
        drift_report["drift"],
        serde_json::json!([]),
        "{drift_report:#}"
    );

    // The blast-radius CronJob's container: every digest apply placed, found by its stamp.
    let blast = docker_run(None, &blast_args, &blast_env);
    let stderr = String::from_utf8_lossy(&blast.stderr);
    assert!(
        blast.status.success(),
        "blast-radius:\n{}\n{stderr}",
        String::from_utf8_lossy(&blast.stdout)
    );
    lap("blast-radius", &mut timings);
    let answer: Value = serde_json::from_slice(&blast.stdout).expect("blast-radius JSON");
    let digests: std::collections::BTreeSet<_> = placed.values().collect();
    assert_eq!(answer["matched"], digests.len(), "{answer:#}");
    assert_eq!(answer["query"]["policy"], "busybox", "{answer:#}");
    assert_eq!(answer["unstamped"], serde_json::json!([]), "{answer:#}");

    eprintln!(
        "image {IMAGE}: {:.1} MB (offline base + stripped test binary); {}",
        size as f64 / 1e6,
        timings.join(", ")
    );
    drop(daemon);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
