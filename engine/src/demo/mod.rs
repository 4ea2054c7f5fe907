//! Local stand-ins for the examples, so they run end to end offline. The Contacts Sync
//! example's are in [`contacts`]; the Pokemon Avatar Sync example's are here:
//! a Pokemon API serving fixture data for pikachu and onix (each pointing its avatar at a PNG
//! served by the same stand-in), and an S3-compatible store (`s3s-fs`, with SigV4 signatures
//! checked) writing objects to a directory.
//!
//! `weft demo` uses them, and so do the tests and the benchmark: [`StandIns::start`] starts
//! both on loopback, [`write_workspace`] writes the example workspace with its endpoints and
//! grants pointed at them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use s3s::dto::{
    CreateBucketInput, CreateBucketOutput, DeleteObjectInput, DeleteObjectOutput, GetObjectInput,
    GetObjectOutput, HeadObjectInput, HeadObjectOutput, ListBucketsInput, ListBucketsOutput,
    ListObjectsV2Input, ListObjectsV2Output, PutObjectInput, PutObjectOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub mod contacts;

/// The example's workspace file, as shipped in `examples/pokemon-avatar-sync/`.
pub const EXAMPLE_WORKSPACE: &str = include_str!("../../../examples/pokemon-avatar-sync/weft.toml");
/// The example integration's marketplace icon, written beside it.
pub const EXAMPLE_ICON: &str = include_str!("../../../examples/pokemon-avatar-sync/icon.svg");
/// The example integration file, as shipped.
pub const EXAMPLE_INTEGRATION: &str =
    include_str!("../../../examples/pokemon-avatar-sync/integration.toml");

/// The Pokemon the stand-in knows: (name, API JSON, avatar PNG).
pub const POKEMON: &[(&str, &str, &[u8])] = &[
    (
        "pikachu",
        include_str!("../../../examples/pokemon-avatar-sync/fixtures/pikachu.json"),
        include_bytes!("../../../examples/pokemon-avatar-sync/fixtures/pikachu.png"),
    ),
    (
        "onix",
        include_str!("../../../examples/pokemon-avatar-sync/fixtures/onix.json"),
        include_bytes!("../../../examples/pokemon-avatar-sync/fixtures/onix.png"),
    ),
];

/// Where the fixtures point their sprites; the stand-in serves them under `/sprites/`.
const SPRITES_UPSTREAM: &str = "https://raw.githubusercontent.com/PokeAPI/sprites/master/sprites/";

/// The bucket the example writes to.
pub const BUCKET: &str = "weft-demo-avatars";

/// The access key id the S3 stand-in accepts.
pub const ACCESS_KEY: &str = "weft-demo";

/// The two stand-in servers, running on loopback until dropped.
#[derive(Debug)]
pub struct StandIns {
    /// The Pokemon API stand-in (`/api/v2/pokemon/NAME`, `/sprites/pokemon/ID.png`).
    pub pokeapi: SocketAddr,
    /// The S3 stand-in.
    pub s3: SocketAddr,
    /// The directory the S3 stand-in keeps buckets in (one directory per bucket).
    pub s3_root: PathBuf,
    /// The secret access key the S3 stand-in accepts with [`ACCESS_KEY`].
    pub secret_key: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for StandIns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl StandIns {
    /// Starts both stand-ins on `127.0.0.1` with ports of the system's choosing; the S3 one
    /// keeps its buckets under `s3_root` (created, with the example's bucket, if missing) and
    /// accepts only [`ACCESS_KEY`] with `secret_key`.
    pub async fn start(s3_root: &Path, secret_key: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(s3_root.join(BUCKET))
            .with_context(|| format!("failed to create `{}`", s3_root.display()))?;

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to listen on 127.0.0.1")?;
        let pokeapi = listener.local_addr()?;
        let app = Router::new()
            .route("/api/v2/pokemon/{name}", get(pokemon))
            .route("/sprites/pokemon/{file}", get(sprite))
            .with_state(format!("http://{pokeapi}/sprites/"));
        let api_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let fs = s3s_fs::FileSystem::new(s3_root)
            .map_err(|e| anyhow::anyhow!("failed to open `{}`: {e:?}", s3_root.display()))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(Store {
            fs,
            root: s3_root.to_path_buf(),
        });
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, secret_key));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to listen on 127.0.0.1")?;
        let s3 = listener.local_addr()?;
        let s3_task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });

        Ok(Self {
            pokeapi,
            s3,
            s3_root: s3_root.to_path_buf(),
            secret_key: secret_key.to_string(),
            tasks: vec![api_task, s3_task],
        })
    }

    /// Where the S3 stand-in keeps object `key` of `bucket`.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.s3_root.join(bucket).join(key)
    }
}

/// `s3s-fs` with the check it leaves out: writing into a bucket that does not exist fails with
/// `NoSuchBucket`, as it does on S3. Reading, listing and bucket operations are passed through.
struct Store {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

#[async_trait::async_trait]
impl S3 for Store {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if !self.root.join(&req.input.bucket).is_dir() {
            return Err(s3s::s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            ));
        }
        self.fs.put_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }
}

async fn pokemon(State(sprites): State<String>, UrlPath(name): UrlPath<String>) -> Response {
    let name = name.to_ascii_lowercase();
    let found = POKEMON.iter().find(|(n, json, _)| {
        *n == name
            || serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v["id"].as_u64())
                .is_some_and(|id| id.to_string() == name)
    });
    match found {
        Some((_, json, _)) => (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            json.replace(SPRITES_UPSTREAM, &sprites),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

async fn sprite(UrlPath(file): UrlPath<String>) -> Response {
    let found = POKEMON.iter().find(|(_, json, _)| {
        serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v["id"].as_u64())
            .is_some_and(|id| file == format!("{id}.png"))
    });
    match found {
        Some((_, _, png)) => ([(header::CONTENT_TYPE, "image/png")], *png).into_response(),
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

/// Which Path Helper the demo's workspace uses: the built-in Rust one, or the walkthrough's
/// code step written into the integration file (JavaScript) or beside it (Python).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathHelper {
    /// `builtin:path-helper`.
    Rust,
    /// `examples/pokemon-avatar-sync/path-helper-inline.js`, in the step's `code`.
    JavaScript,
    /// `examples/pokemon-avatar-sync/path_helper.py`, as the step's `code_file`.
    Python,
}

/// The walkthrough's Path Helper as written there, in Prismatic's signature.
pub const EXAMPLE_PATH_HELPER_INLINE_JS: &str =
    include_str!("../../../examples/pokemon-avatar-sync/path-helper-inline.js");
/// The example's Python Path Helper.
pub const EXAMPLE_PATH_HELPER_PY: &str =
    include_str!("../../../examples/pokemon-avatar-sync/path_helper.py");

impl PathHelper {
    /// The example integration with this Path Helper, and the files it needs beside it.
    pub fn integration(self) -> (String, Vec<(&'static str, &'static str)>) {
        const BUILT_IN: &str = "plugin = \"path-helper\"\n";
        match self {
            Self::Rust => (EXAMPLE_INTEGRATION.to_string(), Vec::new()),
            Self::JavaScript => (
                EXAMPLE_INTEGRATION.replacen(
                    BUILT_IN,
                    &format!(
                        "language = \"javascript\"\ncode = '''\n{EXAMPLE_PATH_HELPER_INLINE_JS}'''\n"
                    ),
                    1,
                ),
                Vec::new(),
            ),
            Self::Python => (
                EXAMPLE_INTEGRATION.replacen(BUILT_IN, "code_file = \"path_helper.py\"\n", 1),
                vec![("path_helper.py", EXAMPLE_PATH_HELPER_PY)],
            ),
        }
    }
}

/// Writes the example workspace pointed at the stand-ins into `dir`, with the built-in Path
/// Helper.
pub fn write_workspace(dir: &Path, stand_ins: &StandIns) -> anyhow::Result<PathBuf> {
    write_workspace_with(dir, stand_ins, PathHelper::Rust)
}

/// Writes the example workspace into `dir` (`weft.toml`, `integration.toml` and the secret
/// file the credential reads), with the Pokemon API URL, the S3 endpoint, the plugins' grants
/// and the AWS credential pointed at `stand_ins`. Returns the workspace file's path.
/// `path_helper` says which Path Helper the integration uses.
pub fn write_workspace_with(
    dir: &Path,
    stand_ins: &StandIns,
    path_helper: PathHelper,
) -> anyhow::Result<PathBuf> {
    let mut file: toml::Table = toml::from_str(EXAMPLE_WORKSPACE)
        .context("the example workspace shipped in the binary does not parse")?;
    let table = |file: &mut toml::Table, path: &[&str]| -> anyhow::Result<toml::Table> {
        let mut at: &mut toml::Table = file;
        for key in path {
            at = at
                .entry(key.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("`{key}` in the example workspace is not a table"))?;
        }
        Ok(at.clone())
    };
    let pokeapi = format!("http://{}", stand_ins.pokeapi);
    let s3 = format!("http://{}", stand_ins.s3);

    let mut config = table(&mut file, &["config"])?;
    config.insert(
        "pokeApiBaseUrl".into(),
        format!("{pokeapi}/api/v2/pokemon").into(),
    );
    config.insert("s3Endpoint".into(), s3.clone().into());
    file.insert("config".into(), config.into());

    let mut plugins = table(&mut file, &["plugins"])?;
    let mut http_get = table(&mut file, &["plugins", "http-get"])?;
    let mut grant = toml::Table::new();
    grant.insert(
        "allow".into(),
        vec![toml::Value::from(pokeapi.clone())].into(),
    );
    grant.insert("allow_loopback".into(), true.into());
    http_get.insert("http".into(), grant.into());
    plugins.insert("http-get".into(), http_get.into());
    let mut s3_put = table(&mut file, &["plugins", "s3-put-object"])?;
    let mut grant = toml::Table::new();
    grant.insert("buckets".into(), vec![toml::Value::from(BUCKET)].into());
    grant.insert(
        "endpoints".into(),
        vec![toml::Value::from(s3.clone())].into(),
    );
    grant.insert("allow_loopback".into(), true.into());
    s3_put.insert("s3".into(), grant.into());
    plugins.insert("s3-put-object".into(), s3_put.into());
    file.insert("plugins".into(), plugins.into());

    let mut credentials = table(&mut file, &["credentials"])?;
    let mut aws = toml::Table::new();
    aws.insert("kind".into(), "api-key-secret".into());
    aws.insert("key".into(), ACCESS_KEY.into());
    aws.insert("secret".into(), "file:secrets/aws-secret-access-key".into());
    credentials.insert("aws".into(), aws.into());
    file.insert("credentials".into(), credentials.into());

    std::fs::create_dir_all(dir.join("secrets"))
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    write_secret(
        &dir.join("secrets/aws-secret-access-key"),
        &stand_ins.secret_key,
    )?;
    let text = format!(
        "# Written by `weft demo`: examples/pokemon-avatar-sync/weft.toml with the Pokemon API,\n\
         # the S3 endpoint, the plugins' grants and the `aws` credential pointed at the local\n\
         # stand-ins ({pokeapi} and {s3}). They stop when the demo ends.\n\n{}",
        toml::to_string(&file).context("failed to write the demo workspace")?
    );
    let path = dir.join("weft.toml");
    std::fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))?;
    let (integration_text, mut beside) = path_helper.integration();
    beside.push(("icon.svg", EXAMPLE_ICON));
    for (name, text) in beside {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    let integration = dir.join("integration.toml");
    std::fs::write(&integration, integration_text)
        .with_context(|| format!("failed to write `{}`", integration.display()))?;
    Ok(path)
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(())
}

/// A fresh random secret for one demo, from the operating system's generator.
pub fn random_secret() -> String {
    use base64::Engine as _;
    use chacha20poly1305::aead::rand_core::RngCore as _;
    let mut bytes = [0u8; 30];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
