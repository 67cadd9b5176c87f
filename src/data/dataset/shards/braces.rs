//! Shell-style brace lists in shard patterns, as WebDataset and `tar` users write them.

use crate::bail;
use crate::error::{Error, Result};

/// Most shards one pattern list may name.
pub const MAX_SHARDS: usize = 1 << 20;

/// Expands shell-style braces: `train-{000..015}.tar` (zero-padded as written) and
/// `{train,val}.tar`, nested or several in one pattern.
pub fn expand_braces(pattern: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    expand_into(pattern, pattern, &mut out)?;
    Ok(out)
}

fn expand_into(whole: &str, pattern: &str, out: &mut Vec<String>) -> Result<()> {
    let Some(open) = pattern.find('{') else {
        if pattern.contains('}') {
            bail!("shard pattern {whole:?}: '}}' without '{{'");
        }
        if out.len() >= MAX_SHARDS {
            bail!("shard pattern {whole:?} names more than {MAX_SHARDS} shards");
        }
        out.push(pattern.to_string());
        return Ok(());
    };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (k, c) in pattern[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + k);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + k),
            _ => {}
        }
    }
    let Some(close) = close else {
        bail!("shard pattern {whole:?}: '{{' without '}}'");
    };
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let choices: Vec<String> = if !commas.is_empty() {
        let mut parts = Vec::new();
        let mut start = open + 1;
        for &c in commas.iter().chain(std::iter::once(&close)) {
            parts.push(pattern[start..c].to_string());
            start = c + 1;
        }
        parts
    } else if let Some((lo, hi)) = body.split_once("..") {
        let bad = || {
            Error::value(format!(
                "shard pattern {whole:?}: {{{body}}} is not a range of integers like {{000..015}}"
            ))
        };
        let (a, b): (u64, u64) = (
            lo.parse().map_err(|_| bad())?,
            hi.parse().map_err(|_| bad())?,
        );
        if a > b {
            bail!("shard pattern {whole:?}: the range {{{body}}} runs backwards");
        }
        if b - a >= MAX_SHARDS as u64 {
            bail!("shard pattern {whole:?} names more than {MAX_SHARDS} shards");
        }
        let width = if lo.starts_with('0') { lo.len() } else { 0 };
        (a..=b).map(|n| format!("{n:0width$}")).collect()
    } else {
        bail!("shard pattern {whole:?}: {{{body}}} is neither a list {{a,b}} nor a range {{0..9}}");
    };
    for choice in choices {
        expand_into(whole, &format!("{head}{choice}{tail}"), out)?;
    }
    Ok(())
}
