//! `steward logs agent [-f] [-n N]`: the agent's captured, redacted
//! stdout/stderr from `<logging.dir>/agent.log` and its rotated files.
//!
//! `-n` reads backwards from the end, across rotated files, so it costs the
//! lines shown, not the size of the log. `-f` then polls the active file and
//! follows it across rotation: when `agent.log` names a new file, the old one
//! is read to its end first, then every file rotated since (a burst can
//! rotate several times between two polls), then the new one, so no line is
//! skipped or shown twice.
//!
//! `--json` prints each line as one JSON object (`time`, `stream`, `text`),
//! one per line, following included.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use steward_core::audit::AGENT;

use super::{CliError, exit, load_config};

/// How often `-f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Bytes read per step when reading a file backwards.
const TAIL_CHUNK: u64 = 64 * 1024;

/// `steward logs ...`
#[derive(Debug, clap::Subcommand)]
pub enum LogsCommand {
    /// The agent's captured stdout/stderr (redacted), oldest first.
    Agent(AgentArgs),
}

/// `steward logs agent`
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Keep printing lines as the agent writes them (Ctrl-C to stop).
    #[arg(short, long)]
    follow: bool,
    /// How many of the last lines to print first.
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
    /// One JSON object per line: {"time", "stream", "text"}.
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(path: &Path, command: LogsCommand) -> Result<ExitCode, CliError> {
    let LogsCommand::Agent(args) = command;
    let config = load_config(path)?;
    let dir = config.logging.dir.clone();
    let active = dir.join(AGENT.active);
    if config.agent.process.is_none() && !active.exists() {
        return Err(anyhow::anyhow!(
            "steward does not run the agent: [agent] has no command (see `steward init` for an example)"
        )
        .into());
    }
    let mut out = anstream::stdout().lock();
    let opened = open_active(&active).with_context(|| format!("cannot read {}", active.display()))?;
    let (mut current, mut pos) = match opened {
        Some((file, len)) => {
            let mut lines = tail(&file, len, args.lines)?;
            if lines.len() < args.lines {
                let older = older_lines(&dir, args.lines - lines.len())?;
                lines.splice(0..0, older);
            }
            for line in &lines {
                if emit(&mut out, line, args.json).is_err() {
                    return Ok(ExitCode::from(exit::OK));
                }
            }
            (Some(file), len)
        }
        None => {
            anstream::eprintln!("no agent output yet ({} does not exist)", active.display());
            (None, 0)
        }
    };
    if !args.follow {
        return Ok(ExitCode::from(exit::OK));
    }
    let mut pending = Vec::new();
    loop {
        let Some(file) = current.as_mut() else {
            if let Some((file, _)) = open_active(&active)? {
                current = Some(file);
                pos = 0;
                continue;
            }
            std::thread::sleep(FOLLOW_POLL);
            continue;
        };
        pos += read_from(file, pos, &mut pending)?;
        if !print_complete(&mut out, &mut pending, args.json) {
            return Ok(ExitCode::from(exit::OK));
        }
        let old_id = file_id(&file.metadata().context("cannot stat agent.log")?);
        let rotated = std::fs::metadata(&active).is_ok_and(|now| file_id(&now) != old_id);
        if !rotated {
            std::thread::sleep(FOLLOW_POLL);
            continue;
        }
        // The writer renamed it: finish the old file, then every file rotated
        // after it (several rotations can happen between two polls), then the
        // new active file from its first byte.
        read_from(file, pos, &mut pending)?;
        let Some((next, _)) = open_active(&active)? else { continue };
        let next_id = file_id(&next.metadata().context("cannot stat agent.log")?);
        for path in rotated_between(&dir, old_id, next_id)? {
            pending.extend(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?);
        }
        if !print_complete(&mut out, &mut pending, args.json) {
            return Ok(ExitCode::from(exit::OK));
        }
        current = Some(next);
        pos = 0;
    }
}

/// Device and inode: what a file is, whatever its name now.
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Rotated agent files, oldest first, strictly after the file `after` and
/// before the file `before` (which may not be rotated yet).
fn rotated_between(dir: &Path, after: (u64, u64), before: (u64, u64)) -> anyhow::Result<Vec<PathBuf>> {
    let rotated = rotated_files(dir)?;
    let ids: Vec<Option<(u64, u64)>> = rotated.iter().map(|p| std::fs::metadata(p).ok().map(|m| file_id(&m))).collect();
    let Some(start) = ids.iter().position(|id| *id == Some(after)) else {
        anstream::eprintln!("steward: the log rotated away before it was read to the end; some lines may be missing");
        return Ok(Vec::new());
    };
    let end = ids.iter().position(|id| *id == Some(before)).unwrap_or(rotated.len());
    Ok(rotated.get(start + 1..end.max(start + 1)).unwrap_or_default().to_vec())
}

/// Rotated agent files, oldest first (their names carry the rotation time).
fn rotated_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| AGENT.is_rotated(n)))
        .collect();
    rotated.sort();
    Ok(rotated)
}

/// The active file and its length; `None` when it does not exist (yet).
fn open_active(path: &Path) -> anyhow::Result<Option<(File, u64)>> {
    match File::open(path) {
        Ok(file) => {
            let len = file.metadata()?.len();
            Ok(Some((file, len)))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Appends everything from `pos` to the end of `file` to `buf`; returns the bytes read.
fn read_from(file: &mut File, pos: u64, buf: &mut Vec<u8>) -> anyhow::Result<u64> {
    file.seek(SeekFrom::Start(pos))?;
    let before = buf.len();
    file.read_to_end(buf)?;
    Ok(u64::try_from(buf.len() - before).unwrap_or(0))
}

/// Prints the complete lines at the start of `pending` and keeps the rest.
/// False when stdout is closed (the reader went away: stop quietly).
fn print_complete(out: &mut impl Write, pending: &mut Vec<u8>, json: bool) -> bool {
    let Some(end) = pending.iter().rposition(|&b| b == b'\n') else { return true };
    let ok = if json {
        String::from_utf8_lossy(&pending[..end]).lines().try_for_each(|line| emit(out, line, true))
    } else {
        out.write_all(&pending[..=end])
    };
    let ok = ok.and_then(|()| out.flush()).is_ok();
    pending.drain(..=end);
    ok
}

/// Writes one `agent.log` line: as it is, or as `{"time", "stream", "text"}`.
fn emit(out: &mut impl Write, line: &str, json: bool) -> std::io::Result<()> {
    if !json {
        return writeln!(out, "{line}");
    }
    let mut parts = line.splitn(3, ' ');
    let value = match (parts.next(), parts.next(), parts.next()) {
        (Some(time), Some(stream @ ("stdout" | "stderr")), text) => {
            serde_json::json!({ "time": time, "stream": stream, "text": text.unwrap_or_default() })
        }
        // Not a line steward wrote (edited by hand): keep it whole.
        _ => serde_json::json!({ "time": null, "stream": null, "text": line }),
    };
    writeln!(out, "{value}")
}

/// The last `n` lines of the first `len` bytes of `file`, reading backwards.
fn tail(file: &File, len: u64, n: usize) -> anyhow::Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    while start > 0 && buf.iter().filter(|&&b| b == b'\n').count() <= n {
        let step = TAIL_CHUNK.min(start);
        start -= step;
        let mut chunk = vec![0_u8; usize::try_from(step)?];
        file.read_exact_at(&mut chunk, start)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..].iter().map(|l| (*l).to_owned()).collect())
}

/// The last `n` lines of the rotated files, oldest first.
fn older_lines(dir: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    let rotated = rotated_files(dir)?;
    let mut out: Vec<String> = Vec::new();
    for path in rotated.iter().rev() {
        if out.len() >= n {
            break;
        }
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let len = file.metadata()?.len();
        let mut lines = tail(&file, len, n - out.len())?;
        lines.append(&mut out);
        out = lines;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_split_time_stream_and_text() {
        let mut out = Vec::new();
        emit(&mut out, "2026-11-26T04:00:00.123Z stderr boom: it broke  twice", true).unwrap();
        emit(&mut out, "edited by hand", true).unwrap();
        emit(&mut out, "2026-11-26T04:00:01.000Z stdout plain", false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["time"], "2026-11-26T04:00:00.123Z");
        assert_eq!(first["stream"], "stderr");
        assert_eq!(first["text"], "boom: it broke  twice");
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["text"], "edited by hand");
        assert!(second["stream"].is_null());
        assert_eq!(lines[2], "2026-11-26T04:00:01.000Z stdout plain");
    }

    #[test]
    fn following_prints_complete_lines_as_json_and_keeps_the_rest() {
        let mut out = Vec::new();
        let mut pending = b"2026-11-26T04:00:00Z stdout one\n2026-11-26T04:00:01Z stdout tw".to_vec();
        assert!(print_complete(&mut out, &mut pending, true));
        assert_eq!(pending, b"2026-11-26T04:00:01Z stdout tw");
        let line: serde_json::Value = serde_json::from_slice(out.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(line["text"], "one");
    }
}
