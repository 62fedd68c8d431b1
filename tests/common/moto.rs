//! An S3-compatible store for the cold archive's tests: moto's standalone
//! server (PyPI `moto[server]`) on a free loopback port, with request
//! authentication enforced: after the set-up (an IAM user with a key and a
//! policy that allows everything, and one bucket, made unsigned), every
//! request must be signed with that user's key; a wrong secret gets 403.
//! Stopped on drop.

use super::{START_TIMEOUT, TempDir, free_port, wait_for};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The unsigned requests the set-up makes (user, key, policy, bucket).
const SETUP_ACTIONS: &str = "4";

pub struct Moto {
    child: Child,
    pub port: u16,
    pub key: String,
    pub secret: String,
    pub bucket: String,
}

const SETUP: &str = r#"
import boto3, json, sys
url, bucket = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="hissrv")
k = iam.create_access_key(UserName="hissrv")["AccessKey"]
iam.put_user_policy(UserName="hissrv", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

const DOWNLOAD: &str = r#"
import boto3, os, sys
url, key, secret, bucket, out = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret)
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        path = os.path.join(out, o["Key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, o["Key"], path)
"#;

impl Moto {
    pub fn start(bucket: &str) -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_ACTIONS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]')");
        let url = format!("http://127.0.0.1:{port}");
        wait_for("moto_server", START_TIMEOUT, || {
            super::agent()
                .get(format!("{url}/moto-api/"))
                .call()
                .is_ok()
        });
        let out = Command::new("python3")
            .args(["-c", SETUP, &url, bucket])
            .output()
            .expect("python3 with boto3");
        assert!(
            out.status.success(),
            "moto set-up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        let (key, secret) = (words.next().expect("key"), words.next().expect("secret"));
        Moto {
            child,
            port,
            key: key.to_string(),
            secret: secret.to_string(),
            bucket: bucket.to_string(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `lifecycle` section archiving `telemetry` to this store's bucket
    /// under `gw7/` through `endpoint`, signed with `secret`; `extra`: more
    /// keys of `lifecycle.archive.s3` (indented six spaces).
    pub fn lifecycle(&self, endpoint: &str, secret: &str, extra: &str) -> String {
        format!(
            "lifecycle:\n  archive:\n    flush_interval: 1s\n    max_backoff: 1s\n    s3:\n      endpoint: \"{endpoint}\"\n      path_style: true\n      access_key_id: \"{}\"\n      secret_access_key: \"{secret}\"\n{extra}  rules:\n    - measurement: telemetry\n      cold_storage: \"s3://{}/gw7/\"\n",
            self.key, self.bucket
        )
    }

    /// Every object of the bucket, downloaded under `out` by its key.
    pub fn download(&self, out: &Path) {
        let status = Command::new("python3")
            .args([
                "-c",
                DOWNLOAD,
                &self.url(),
                &self.key,
                &self.secret,
                &self.bucket,
            ])
            .arg(out)
            .status()
            .expect("python3 with boto3");
        assert!(status.success(), "download from moto");
    }

    /// The point lines of every `.lp.gz` object in the bucket now.
    pub fn archived_lines(&self) -> Vec<String> {
        let got = self.snapshot();
        let mut lines = Vec::new();
        let mut dirs = vec![got.path().to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).expect("the snapshot") {
                let p = e.expect("an entry").path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.to_string_lossy().ends_with(".lp.gz") {
                    let mut text = String::new();
                    std::io::Read::read_to_string(
                        &mut flate2::read::GzDecoder::new(std::fs::File::open(&p).expect("object")),
                        &mut text,
                    )
                    .expect("gzip");
                    lines.extend(
                        (text.lines())
                            .filter(|l| !l.starts_with('#') && !l.is_empty())
                            .map(str::to_string),
                    );
                }
            }
        }
        lines
    }

    /// A temp dir holding the bucket's objects now.
    pub fn snapshot(&self) -> TempDir {
        let dir = TempDir::new("moto-objects");
        self.download(dir.path());
        dir
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
