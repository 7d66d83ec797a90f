//! A node's operator port, read the way a scraper or a load balancer does:
//! `GET /health` (200 or 503 with a [`HealthReport`]) and `GET /metrics`
//! (OpenMetrics text), by plain HTTP/1.0 with a bounded wait and a bounded
//! answer.

use std::time::Duration;

use palisade_ledger::ShardId;
use palisade_ledger::api::HealthReport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read (a node's whole `/metrics` is tens of KiB).
const MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;

/// `GET path` on `base` (`http://127.0.0.1:PORT`): the status code and the
/// body.
async fn get(base: &str, path: &str) -> Result<(u16, String), String> {
    let address = base.trim_start_matches("http://").trim_end_matches('/');
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER_BYTES).read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{base}{path}: no answer within {TIMEOUT:?}"))??;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("{base}{path}: not an HTTP answer"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{base}{path}: no status code in {:?}", head.lines().next()))?;
    Ok((code, body.to_string()))
}

/// `/health`: the status code and the report.
pub async fn health(base: &str) -> Result<(u16, HealthReport), String> {
    let (code, body) = get(base, "/health").await?;
    let report = serde_json::from_str(&body).map_err(|e| format!("{base}/health: {e}"))?;
    Ok((code, report))
}

/// The value of counter or gauge `name` (its full series name, e.g.
/// `palisade_committed_txs_total`) for `shard` in a `/metrics` body.
fn metric(body: &str, name: &str, shard: ShardId) -> Option<f64> {
    let series = format!("{name}{{shard=\"{shard}\"}} ");
    body.lines().find_map(|line| line.strip_prefix(&series)?.trim().parse().ok())
}

/// [`metric`] read from the node at `base`.
pub async fn read_metric(base: &str, name: &str, shard: ShardId) -> Result<f64, String> {
    let (code, body) = get(base, "/metrics").await?;
    if code != 200 {
        return Err(format!("{base}/metrics answered {code}"));
    }
    metric(&body, name, shard).ok_or_else(|| format!("{base}/metrics has no {name} for shard {shard}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_found_by_name_and_shard_only() {
        let body = "# HELP palisade_committed_txs Transactions committed\n\
                    palisade_committed_txs_total{shard=\"1\"} 17\n\
                    palisade_committed_txs_total{shard=\"12\"} 99\n\
                    palisade_committed_txs_total_extra{shard=\"2\"} 5\n\
                    palisade_committed_txs_total{shard=\"2\"} 3.5\n";
        assert_eq!(metric(body, "palisade_committed_txs_total", 1), Some(17.0));
        assert_eq!(metric(body, "palisade_committed_txs_total", 2), Some(3.5));
        assert_eq!(metric(body, "palisade_committed_txs_total", 3), None);
        assert_eq!(metric(body, "palisade_committed_txs", 1), None);
    }
}
