//! Request traces for `rmhost sim`: readers for plain text (one id per line, size 1), CSV
//! (`id,size[,time]`), libCacheSim's oracleGeneral binary (with a writer), and a
//! deterministic synthetic Zipf generator.
//!
//! # The synthetic generator (`zipf:alpha=A,objects=N,requests=M,seed=S`)
//! So others can reproduce a trace bit for bit:
//! - random numbers: SplitMix64 with state `seed` (`state += 0x9E3779B97F4A7C15`, then the
//!   standard finaliser `z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) *
//!   0x94D049BB133111EB; z ^ z>>31`); a uniform `u = (z >> 11) * 2^-53` in [0, 1).
//! - ranks: weights `w_k = 1 / k^A` for k = 1..=N, cumulative sums `C_k` in f64 summed in
//!   order k = 1..N; the request is the smallest k with `C_k >= u * C_N` (binary search).
//! - the object id is the rank k (1-based, so id 1 is the most popular); every size is 1;
//!   time is the request index.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

/// One request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The trace's clock (plain and synthetic traces: the request index).
    pub time: u64,
    /// Object id.
    pub id: u64,
    /// Object size, bytes (1 in object-count traces).
    pub size: u64,
}

/// A whole trace in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The requests, in order.
    pub requests: Vec<Request>,
}

/// The on-disk trace formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// One id per line (size 1).
    Plain,
    /// `id,size[,time]` per line; a non-numeric first line is a header.
    Csv,
    /// libCacheSim oracleGeneral: 24-byte LE records `u32 time, u64 id, u32 size, i64 next`.
    OracleGeneral,
}

impl FromStr for TraceFormat {
    type Err = TraceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" | "txt" => Ok(TraceFormat::Plain),
            "csv" => Ok(TraceFormat::Csv),
            "oracle-general" | "oracleGeneral" | "oracle_general" => Ok(TraceFormat::OracleGeneral),
            other => Err(TraceError::Format(format!(
                "unknown trace format {other:?} (expected plain, csv or oracle-general)"
            ))),
        }
    }
}

/// A trace could not be read or generated.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading the file failed.
    #[error("cannot read trace {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line did not parse.
    #[error("trace line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// The binary trace's length is not a multiple of 24 bytes.
    #[error(
        "oracleGeneral trace is {0} bytes, not a multiple of 24: truncated or not oracleGeneral"
    )]
    Truncated(usize),
    /// An unknown format or a bad synthetic spec.
    #[error("{0}")]
    Format(String),
}

const RECORD: usize = 24;

impl Trace {
    /// Reads `path` in `format`.
    pub fn read(path: &Path, format: TraceFormat) -> Result<Trace, TraceError> {
        let io = |source| TraceError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io)?;
        match format {
            TraceFormat::OracleGeneral => Trace::from_oracle_general(&bytes),
            TraceFormat::Plain | TraceFormat::Csv => {
                let text = String::from_utf8_lossy(&bytes);
                if format == TraceFormat::Plain {
                    Trace::parse_plain(&text)
                } else {
                    Trace::parse_csv(&text)
                }
            }
        }
    }

    /// Parses one id per line. Numeric ids are used as is; other ids are hashed (FNV-1a)
    /// to u64. Blank lines are skipped.
    pub fn parse_plain(text: &str) -> Result<Trace, TraceError> {
        let mut requests = Vec::new();
        for line in text.lines() {
            let id = line.trim();
            if id.is_empty() {
                continue;
            }
            requests.push(Request {
                time: requests.len() as u64,
                id: parse_id(id),
                size: 1,
            });
        }
        Ok(Trace { requests })
    }

    /// Parses `id,size[,time]` lines; a first line whose size field is not a number is a
    /// header. Without a time column the time is the request index.
    pub fn parse_csv(text: &str) -> Result<Trace, TraceError> {
        let mut requests = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split(',').map(str::trim);
            let id = fields.next().unwrap_or_default();
            let size = fields.next().ok_or_else(|| TraceError::Parse {
                line: n + 1,
                reason: "expected id,size[,time]".into(),
            })?;
            let size: u64 = match size.parse() {
                Ok(s) => s,
                Err(_) if n == 0 => continue, // header
                Err(e) => {
                    return Err(TraceError::Parse {
                        line: n + 1,
                        reason: format!("size {size:?}: {e}"),
                    });
                }
            };
            let time = match fields.next() {
                Some(t) => t.parse().map_err(|e| TraceError::Parse {
                    line: n + 1,
                    reason: format!("time {t:?}: {e}"),
                })?,
                None => requests.len() as u64,
            };
            requests.push(Request {
                time,
                id: parse_id(id),
                size,
            });
        }
        Ok(Trace { requests })
    }

    /// Decodes oracleGeneral records (the next-access field is recomputed when needed).
    pub fn from_oracle_general(bytes: &[u8]) -> Result<Trace, TraceError> {
        if !bytes.len().is_multiple_of(RECORD) {
            return Err(TraceError::Truncated(bytes.len()));
        }
        let requests = bytes
            .chunks_exact(RECORD)
            .map(|r| Request {
                time: u32::from_le_bytes(r[0..4].try_into().unwrap_or_default()) as u64,
                id: u64::from_le_bytes(r[4..12].try_into().unwrap_or_default()),
                size: u32::from_le_bytes(r[12..16].try_into().unwrap_or_default()) as u64,
            })
            .collect();
        Ok(Trace { requests })
    }

    /// Writes the trace as oracleGeneral, with each request's next-access virtual time
    /// (the index of the next request for the same id, -1 when there is none, as
    /// libCacheSim writes it). Time and size are clamped to u32.
    pub fn write_oracle_general(&self, mut out: impl Write) -> std::io::Result<()> {
        let next = self.next_access();
        let mut buf = Vec::with_capacity(self.requests.len() * RECORD);
        for (r, &n) in self.requests.iter().zip(&next) {
            buf.extend_from_slice(&(r.time.min(u32::MAX as u64) as u32).to_le_bytes());
            buf.extend_from_slice(&r.id.to_le_bytes());
            buf.extend_from_slice(&(r.size.min(u32::MAX as u64) as u32).to_le_bytes());
            let n: i64 = if n == u64::MAX { -1 } else { n as i64 };
            buf.extend_from_slice(&n.to_le_bytes());
        }
        out.write_all(&buf)
    }

    /// The bytes of every distinct object, each at the size of its first request: the
    /// cache size that would never miss again (what `--cache-size 10%` is a share of).
    pub fn footprint(&self) -> u64 {
        let mut seen: hashbrown::HashSet<u64> = hashbrown::HashSet::new();
        self.requests
            .iter()
            .filter(|r| seen.insert(r.id))
            .fold(0u64, |acc, r| acc.saturating_add(r.size))
    }

    /// For each request, the index of the next request for the same id (`u64::MAX` when
    /// never again).
    pub fn next_access(&self) -> Vec<u64> {
        let mut next = vec![u64::MAX; self.requests.len()];
        let mut seen: hashbrown::HashMap<u64, u64> = hashbrown::HashMap::new();
        for (i, r) in self.requests.iter().enumerate().rev() {
            if let Some(n) = seen.insert(r.id, i as u64) {
                next[i] = n;
            }
        }
        next
    }

    /// A synthetic trace from a spec, `zipf:alpha=1.0,objects=10000,requests=200000,seed=42`
    /// (see the module docs for the exact generator).
    pub fn synthetic(spec: &str) -> Result<Trace, TraceError> {
        let bad = |m: String| TraceError::Format(m);
        let params = spec.strip_prefix("zipf:").ok_or_else(|| {
            bad(format!(
                "unknown synthetic trace {spec:?} (expected zipf:...)"
            ))
        })?;
        let (mut alpha, mut objects, mut requests, mut seed) =
            (1.0f64, 10_000u64, 100_000u64, 42u64);
        for kv in params.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key=value, got {kv:?}")))?;
            let num = |v: &str| v.parse::<u64>().map_err(|e| bad(format!("{k}={v}: {e}")));
            match k {
                "alpha" => alpha = v.parse().map_err(|e| bad(format!("alpha={v}: {e}")))?,
                "objects" => objects = num(v)?,
                "requests" => requests = num(v)?,
                "seed" => seed = num(v)?,
                _ => return Err(bad(format!("unknown zipf parameter {k:?}"))),
            }
        }
        if objects == 0 || alpha.is_nan() || alpha < 0.0 {
            return Err(bad("zipf needs objects >= 1 and alpha >= 0".into()));
        }
        Ok(zipf(alpha, objects, requests, seed))
    }
}

fn parse_id(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| {
        s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    })
}

/// SplitMix64: tiny, fast, and trivial to reimplement in any language.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform f64 in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf ranks (1-based) as object ids, unit sizes; see the module docs.
pub fn zipf(alpha: f64, objects: u64, requests: u64, seed: u64) -> Trace {
    let mut cdf = Vec::with_capacity(objects as usize);
    let mut sum = 0.0f64;
    for k in 1..=objects {
        sum += 1.0 / (k as f64).powf(alpha);
        cdf.push(sum);
    }
    let mut rng = SplitMix64(seed);
    let requests = (0..requests)
        .map(|i| {
            let u = rng.next_f64() * sum;
            let k = cdf.partition_point(|&c| c < u).min(cdf.len() - 1);
            Request {
                time: i,
                id: k as u64 + 1,
                size: 1,
            }
        })
        .collect();
    Trace { requests }
}
